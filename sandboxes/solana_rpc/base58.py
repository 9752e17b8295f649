"""Base58 (the Bitcoin alphabet Solana uses) for instruction data and base58 transactions.

solders encodes keys, hashes and signatures itself but offers no general-purpose codec, and the
JSON-RPC API also base58-encodes instruction data and (by default) whole transactions.
"""

from __future__ import annotations

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {character: value for value, character in enumerate(ALPHABET)}


def b58encode(data: bytes) -> str:
    """``data`` in base58; each leading zero byte becomes a leading ``1``."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    number = int.from_bytes(data, "big")
    digits: list[str] = []
    while number:
        number, remainder = divmod(number, 58)
        digits.append(ALPHABET[remainder])
    return "1" * zeros + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    """The bytes ``text`` encodes; ``ValueError`` names the first character outside the alphabet."""
    number = 0
    for position, character in enumerate(text):
        value = _INDEX.get(character)
        if value is None:
            raise ValueError(f"invalid base58 character {character!r} at position {position}")
        number = number * 58 + value
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body
