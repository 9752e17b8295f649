"""The shape of a Kassa API key: ``kas_live_<30 random base62><6 base62 CRC32 checksum>``.

The prefix tells a human (and a secret scanner) what it is and whether it is live or test; the
checksum lets a scanner or the gateway reject a mistyped or made-up key offline, before any
database lookup. Keys are stored only as HMAC-SHA256 under a server secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import zlib
from typing import Literal

KeyEnvironment = Literal["live", "test"]
ALPHABET = string.digits + string.ascii_letters
BODY_LENGTH = 30
CHECKSUM_LENGTH = 6
PREFIXES: dict[str, KeyEnvironment] = {"kas_live_": "live", "kas_test_": "test"}
DISPLAY_LENGTH = 13  # "kas_live_" + 4 characters: enough to tell keys apart in a listing


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, remainder = divmod(number, 62)
        digits.append(ALPHABET[remainder])
    return "".join(reversed(digits))


def _checksum(prefix_and_body: str) -> str:
    return _base62(zlib.crc32(prefix_and_body.encode()), CHECKSUM_LENGTH)


def generate_api_key(environment: KeyEnvironment) -> str:
    """A new random key for ``environment``."""
    prefix = f"kas_{environment}_"
    body = "".join(secrets.choice(ALPHABET) for _ in range(BODY_LENGTH))
    return prefix + body + _checksum(prefix + body)


def key_environment(key: str) -> KeyEnvironment | None:
    """``live``/``test`` for a well-formed key with a valid checksum, else None."""
    for prefix, environment in PREFIXES.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if len(rest) != BODY_LENGTH + CHECKSUM_LENGTH or any(c not in ALPHABET for c in rest):
            return None
        body, checksum = rest[:BODY_LENGTH], rest[BODY_LENGTH:]
        if hmac.compare_digest(checksum, _checksum(prefix + body)):
            return environment
        return None
    return None


def display_prefix(key: str) -> str:
    """The part of a key safe to show in listings and logs."""
    return key[:DISPLAY_LENGTH]


def hash_api_key(key: str, secret: bytes) -> str:
    """HMAC-SHA256 of a key under the server secret: what the database stores."""
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()
