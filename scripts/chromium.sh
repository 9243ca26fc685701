#!/usr/bin/env bash
# Installs Debian's `chromium` (headless, for the hub web UI's browser tests) when it is missing,
# and prints its path. Idempotent; needs root (CI runs as root). Waits for a dpkg lock held by
# another apt run instead of failing.
set -euo pipefail
for c in chromium chromium-browser; do
  if p=$(command -v "$c" 2>/dev/null); then echo "$p"; exit 0; fi
done
if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
  --no-install-recommends chromium fonts-dejavu-core >&2
command -v chromium
