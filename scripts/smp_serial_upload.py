#!/usr/bin/env python3
"""A small MCUmgr SMP client over the serial transport, for
scripts/qemu-boot-chain.sh: uploads a file with image upload (group 1,
command 1), reads the image state (group 1, command 0) and asks for a reset
(group 0, command 5) on a pty, and prints what the device answered.

The serial transport (as Zephyr's smp_uart and smpclient): the packet
(8-byte SMP header + CBOR body) with a 2-byte big-endian length in front
(packet + CRC) and its CRC-16/XMODEM (big-endian) behind, base64, cut into
lines of at most 127 bytes: 0x06 0x09 before the first, 0x04 0x14 before
each continuation, '\\n' after each. Only the standard library: the CBOR
needed here (maps with text keys, unsigned ints, byte and text strings,
booleans, arrays) is encoded and decoded by hand.

usage: smp_serial_upload.py PTY FILE [--chunk N] [--expect-refusal] [--no-reset] [--power-cut]
exit status: 0 when every answer was as expected.
"""
import argparse, base64, os, select, struct, sys, time


def crc16_xmodem(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def cbor_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for info, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | info]) + struct.pack(fmt, n)
    raise ValueError(n)


def cbor(v):
    if isinstance(v, bool):
        return b"\xf5" if v else b"\xf4"
    if isinstance(v, int):
        return cbor_head(0, v)
    if isinstance(v, bytes):
        return cbor_head(2, len(v)) + v
    if isinstance(v, str):
        b = v.encode()
        return cbor_head(3, len(b)) + b
    if isinstance(v, list):
        return cbor_head(4, len(v)) + b"".join(cbor(x) for x in v)
    if isinstance(v, dict):  # keys in the caller's order (deterministic order given)
        return cbor_head(5, len(v)) + b"".join(cbor(k) + cbor(x) for k, x in v.items())
    raise TypeError(v)


def uncbor(b, i=0):
    major, info = b[i] >> 5, b[i] & 31
    i += 1
    if info < 24:
        n = info
    elif info in (24, 25, 26, 27):
        size = 1 << (info - 24)
        n = int.from_bytes(b[i:i + size], "big")
        i += size
    else:
        raise ValueError("indefinite lengths are not used")
    if major == 0:
        return n, i
    if major == 1:
        return -1 - n, i
    if major in (2, 3):
        s = b[i:i + n]
        return (s if major == 2 else s.decode()), i + n
    if major == 4:
        out = []
        for _ in range(n):
            v, i = uncbor(b, i)
            out.append(v)
        return out, i
    if major == 5:
        out = {}
        for _ in range(n):
            k, i = uncbor(b, i)
            v, i = uncbor(b, i)
            out[k] = v
        return out, i
    if major == 7:
        return {20: False, 21: True, 22: None}[info], i
    raise ValueError(major)


class Serial:
    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        try:
            import termios, tty
            tty.setraw(self.fd)
            attrs = termios.tcgetattr(self.fd)
            attrs[3] &= ~termios.ECHO
            termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        except Exception:
            pass
        self.buf = b""
        self.seq = 0

    def send(self, packet):
        raw = struct.pack(">H", len(packet) + 2) + packet + struct.pack(">H", crc16_xmodem(packet))
        text = base64.b64encode(raw)
        first = True
        while text:
            piece, text = text[:124], text[124:]
            os.write(self.fd, (b"\x06\x09" if first else b"\x04\x14") + piece + b"\n")
            first = False

    def line(self, timeout):
        end = time.time() + timeout
        while b"\n" not in self.buf:
            left = end - time.time()
            if left <= 0:
                raise TimeoutError("no answer from the device")
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                self.buf += os.read(self.fd, 4096)
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def receive(self, timeout):
        text = b""
        while True:
            line = self.line(timeout)
            if line.startswith(b"\x06\x09"):
                text = line[2:]
            elif line.startswith(b"\x04\x14"):
                text += line[2:]
            else:
                continue  # console output
            raw = base64.b64decode(text)
            if len(raw) >= 2 and len(raw) - 2 >= struct.unpack(">H", raw[:2])[0]:
                n = struct.unpack(">H", raw[:2])[0]
                packet, crc = raw[2:2 + n - 2], raw[2 + n - 2:2 + n]
                if struct.unpack(">H", crc)[0] != crc16_xmodem(packet):
                    raise ValueError("bad CRC in the answer")
                return packet

    def request(self, op, group, cmd, body, timeout=30):
        self.seq = (self.seq + 1) & 0xFF
        payload = cbor(body)
        header = struct.pack(">BBHHBB", (1 << 3) | op, 0, len(payload), group, self.seq, cmd)
        self.send(header + payload)
        packet = self.receive(timeout)
        rsp, _ = uncbor(packet[8:])
        return rsp


def failed(rsp):
    return rsp.get("rc", 0) != 0 or ("err" in rsp and rsp["err"].get("rc", 0) != 0)


def upload_until_cut(a):
    data = open(a.file, "rb").read()
    s = Serial(a.pty)
    off = 0
    while off < len(data):
        body = {"off": off, "data": data[off:off + a.chunk]}
        if off == 0:
            body = {"len": len(data), "off": 0, "data": body["data"]}
        rsp = s.request(2, 1, 1, body)
        if failed(rsp):
            raise SystemExit("upload refused at offset %d: %r" % (off, rsp))
        off = rsp["off"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pty")
    ap.add_argument("file")
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--expect-refusal", action="store_true")
    ap.add_argument("--no-reset", action="store_true")
    ap.add_argument("--power-cut", action="store_true",
                    help="the device loses power during the upload: the pty closing is the expected end")
    a = ap.parse_args()
    if a.power_cut:
        try:
            upload_until_cut(a)
        except OSError as e:
            print("the device went away during the upload (power cut): %s" % e)
            sys.exit(0)
        print("the upload finished: no power cut happened")
        sys.exit(1)
    data = open(a.file, "rb").read()
    s = Serial(a.pty)
    state = s.request(0, 1, 0, {})
    print("image state before:", {i["slot"]: i.get("bootable") for i in state.get("images", [])})
    off, t0, refused = 0, time.time(), None
    while off < len(data):
        piece = data[off:off + a.chunk]
        body = {"off": off, "data": piece}
        if off == 0:
            body = {"len": len(data), "off": 0, "data": piece}
        rsp = s.request(2, 1, 1, body)
        if failed(rsp):
            refused = rsp
            break
        off = rsp["off"]
    dt = time.time() - t0
    if refused is not None:
        print("upload refused at offset %d: %r" % (off, refused))
    else:
        print("uploaded %d bytes in %.1f s" % (len(data), dt))
    state = s.request(0, 1, 0, {})
    images = {i["slot"]: i.get("bootable") for i in state.get("images", [])}
    print("image state after:", images)
    ok = (refused is not None) == a.expect_refusal
    if not a.expect_refusal and not any(images.values()):
        print("no slot is bootable after the upload")
        ok = False
    if a.expect_refusal and any(images.values()):
        print("a refused upload left a bootable slot")
        ok = False
    if not a.no_reset:
        rsp = s.request(2, 0, 5, {})
        print("reset:", "ok" if not failed(rsp) else rsp)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
