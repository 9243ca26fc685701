# shellcheck shell=bash
# The device identity files (FORMAT.md), shared by lib/qemu.sh and lib/lock.sh:
#
#   device_ids DOMAIN CLASS DIR   DIR/vendor-id.bin (UUIDv5 of DOMAIN in the DNS
#                                 namespace) and DIR/class-id.bin (UUIDv5 of CLASS
#                                 under the vendor id), 16 raw bytes each

device_ids() { # device_ids DOMAIN CLASS DIR
  python3 - "$1" "$2" "$3" <<'PY'
import os, sys, uuid
vendor = uuid.uuid5(uuid.NAMESPACE_DNS, sys.argv[1])
klass = uuid.uuid5(vendor, sys.argv[2])
for name, u in (("vendor-id.bin", vendor), ("class-id.bin", klass)):
    with open(os.path.join(sys.argv[3], name), "wb") as out:
        out.write(u.bytes)
PY
}
