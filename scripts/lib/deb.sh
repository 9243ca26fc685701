# shellcheck shell=bash
# A Debian package a script needs, installed when missing (scripts/mosquitto.sh,
# scripts/postgres.sh). Source it after defining `say MSG` (the script's
# messages on stderr):
#
#   find_or_install PACKAGE FIND   prints what FIND (a function: the path of the
#                                  binary or folder wanted, or nothing) prints; when
#                                  that is nothing, first apt-get installs PACKAGE
#                                  (sudo unless root); exits 1 if FIND still finds
#                                  nothing

find_or_install() { # find_or_install PACKAGE FIND
  local pkg=$1 find=$2 found sudo=
  found="$($find)"
  if [ -z "$found" ]; then
    say "installing Debian's $pkg with apt"
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$pkg" >&2
    found="$($find)"
    [ -n "$found" ] || { say "apt installed $pkg but $find finds nothing"; exit 1; }
  fi
  printf '%s\n' "$found"
}
