"""smpclient against keyway-lock.

HOST may be serial:PATH (the lock's serial port; PORT is then ignored):
smpclient's SMPSerialTransport over pyserial instead of UDP.

Usage: python smp_client_check.py flow HOST PORT ENVELOPE.suit
           upload -> image state read -> test by hash -> reset
       python smp_client_check.py state HOST PORT
           one line per image: slot=N version=V active=B confirmed=B pending=B

Exits non-zero, naming the step, if any step fails. Prints one line per step.
"""

import asyncio
import hashlib
import sys

from smpclient import SMPClient
from smpclient.generics import error, success
from smpclient.requests.image_management import ImageStatesRead, ImageStatesWrite
from smpclient.requests.os_management import ResetWrite
from smpclient.transport.serial import SMPSerialTransport
from smpclient.transport.udp import SMPUDPTransport


class PortUDPTransport(SMPUDPTransport):
    """The UDP transport on a chosen port (SMPClient.connect uses the default, 1337)."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self._port = port

    async def connect(self, address: str, timeout_s: float, port: int = 0) -> None:
        await super().connect(address, timeout_s, port=self._port)


def connect_to(host: str, port: int) -> SMPClient:
    """A client for HOST (serial:PATH: the serial transport, else UDP at HOST:PORT)."""
    if host.startswith("serial:"):
        return SMPClient(SMPSerialTransport(), host[len("serial:"):])
    return SMPClient(PortUDPTransport(port), host)


def fail(step: str, what: object) -> None:
    print(f"FAIL {step}: {what}")
    sys.exit(1)


async def state(host: str, port: int) -> None:
    client = connect_to(host, port)
    await client.connect()
    r = await client.request(ImageStatesRead())
    if not success(r):
        fail("state read", r)
    for i in r.images:
        print(
            f"slot={i.slot} version={i.version} active={bool(i.active)} "
            f"confirmed={bool(i.confirmed)} pending={bool(i.pending)}"
        )
    await client.disconnect()


async def flow(host: str, port: int, path: str) -> None:
    image = open(path, "rb").read()
    digest = hashlib.sha256(image).digest()
    client = connect_to(host, port)
    await client.connect()

    last = 0
    async for off in client.upload(image):
        last = off
    if last != len(image):
        fail("upload", f"ended at {last} of {len(image)}")
    print(f"upload: {len(image)} bytes")

    r = await client.request(ImageStatesRead())
    if not success(r):
        fail("state read", r)
    mine = [i for i in r.images if i.hash is not None and bytes(i.hash) == digest]
    if not mine:
        fail("state read", f"no image with hash {digest.hex()}: {r.images}")
    print(f"state read: slot {mine[0].slot} version {mine[0].version} pending={mine[0].pending}")

    r = await client.request(ImageStatesWrite(hash=digest, confirm=False))
    if error(r):
        fail("test by hash", r)
    print("test by hash: ok")

    r = await client.request(ResetWrite())
    if error(r):
        fail("reset", r)
    print("reset: ok")
    await client.disconnect()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "flow":
        asyncio.run(flow(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    elif len(sys.argv) == 4 and sys.argv[1] == "state":
        asyncio.run(state(sys.argv[2], int(sys.argv[3])))
    else:
        print(__doc__)
        sys.exit(2)
