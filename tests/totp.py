"""RFC 4226/6238 one-time codes, written here independently of pyotp (the package's library),
so the tests check the product against the RFC rather than against itself. The test vectors
in tests/test_two_factor.py check this module."""

from __future__ import annotations

import base64
import hmac
import struct

from .conftest import FakeClock

STEP = 30


def hotp(key: bytes, counter: int, digits: int = 6) -> str:
    """RFC 4226: HMAC-SHA1 of the counter, dynamically truncated."""
    mac = hmac.new(key, struct.pack(">Q", counter), "sha1").digest()
    offset = mac[-1] & 0x0F
    (value,) = struct.unpack(">I", mac[offset : offset + 4])
    return str((value & 0x7FFFFFFF) % 10**digits).zfill(digits)


def totp(key: bytes, unix_time: float, digits: int = 6) -> str:
    """RFC 6238: HOTP of the number of 30-second steps since the epoch."""
    return hotp(key, int(unix_time) // STEP, digits)


def b32key(secret: str) -> bytes:
    return base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))


def code_for(secret: str, clock: FakeClock, steps: int = 0) -> str:
    """The code an authenticator app shows at ``clock.now`` moved by ``steps`` time steps."""
    return totp(b32key(secret), clock.now.timestamp() + steps * STEP)
