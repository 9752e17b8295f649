"""API key shape (prefix, checksum, display, hashing) and time-ordered UUIDv7 ids."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from shared.api_key_format import (
    ALPHABET,
    BODY_LENGTH,
    CHECKSUM_LENGTH,
    DISPLAY_LENGTH,
    KeyEnvironment,
    display_prefix,
    generate_api_key,
    hash_api_key,
    key_environment,
)
from shared.ids import new_id, new_id_str

KEY_LENGTH = len("kas_live_") + BODY_LENGTH + CHECKSUM_LENGTH


def replace_at(key: str, index: int, character: str) -> str:
    return key[:index] + character + key[index + 1 :]


class TestGeneratedKeys:
    @pytest.mark.parametrize("environment", ["live", "test"])
    async def test_generated_key_has_prefix_length_and_validates(
        self, environment: KeyEnvironment
    ) -> None:
        key = generate_api_key(environment)

        assert key.startswith(f"kas_{environment}_")
        assert len(key) == KEY_LENGTH == 45
        assert all(character in ALPHABET for character in key[len(f"kas_{environment}_") :])
        assert key_environment(key) == environment

    async def test_generated_keys_are_distinct(self) -> None:
        keys = {generate_api_key("live") for _ in range(200)}

        assert len(keys) == 200


class TestKeyValidation:
    @pytest.mark.parametrize("environment", ["live", "test"])
    async def test_changing_any_one_character_invalidates_the_key(
        self, environment: KeyEnvironment
    ) -> None:
        key = generate_api_key(environment)
        start = len(f"kas_{environment}_")

        for index in range(start, len(key)):
            original = key[index]
            replacement = ALPHABET[(ALPHABET.index(original) + 1) % len(ALPHABET)]
            tampered = replace_at(key, index, replacement)
            assert key_environment(tampered) is None, f"position {index} went unnoticed"

    async def test_a_character_outside_the_alphabet_is_rejected(self) -> None:
        key = generate_api_key("live")

        assert key_environment(replace_at(key, 20, "-")) is None

    @pytest.mark.parametrize("prefix", ["kas_prod_", "sk_live__", "KAS_LIVE_", "kas-live-"])
    async def test_wrong_prefix_is_rejected(self, prefix: str) -> None:
        key = generate_api_key("live")

        assert key_environment(prefix + key[len("kas_live_") :]) is None

    async def test_checksum_binds_the_environment(self) -> None:
        key = generate_api_key("test")

        assert key_environment("kas_live_" + key[len("kas_test_") :]) is None

    @pytest.mark.parametrize("cut", [1, CHECKSUM_LENGTH])
    async def test_truncated_key_is_rejected(self, cut: int) -> None:
        key = generate_api_key("live")

        assert key_environment(key[:-cut]) is None

    async def test_extra_characters_are_rejected(self) -> None:
        assert key_environment(generate_api_key("live") + "0") is None

    @pytest.mark.parametrize("value", ["", "kas_live_", "not a key"])
    async def test_junk_is_rejected(self, value: str) -> None:
        assert key_environment(value) is None


class TestDisplayAndHash:
    async def test_display_prefix_is_thirteen_characters(self) -> None:
        key = generate_api_key("live")

        shown = display_prefix(key)

        assert len(shown) == DISPLAY_LENGTH == 13
        assert shown == key[:13]
        assert shown.startswith("kas_live_")

    async def test_hash_is_64_hex_characters_and_deterministic(self) -> None:
        key = generate_api_key("live")

        digest = hash_api_key(key, b"secret-one")

        assert re.fullmatch(r"[0-9a-f]{64}", digest)
        assert hash_api_key(key, b"secret-one") == digest
        assert key not in digest

    async def test_hash_depends_on_the_secret(self) -> None:
        key = generate_api_key("live")

        assert hash_api_key(key, b"secret-one") != hash_api_key(key, b"secret-two")

    async def test_hash_depends_on_the_key(self) -> None:
        assert hash_api_key(generate_api_key("live"), b"s") != hash_api_key(
            generate_api_key("live"), b"s"
        )


class TestNewId:
    async def test_is_version_7_with_rfc_4122_variant(self) -> None:
        identifier = new_id()

        assert identifier.version == 7
        assert identifier.variant == uuid.RFC_4122

    async def test_string_form_parses_back(self) -> None:
        text = new_id_str()

        assert uuid.UUID(text).version == 7
        assert text == str(uuid.UUID(text))

    async def test_timestamp_prefix_is_current_unix_milliseconds(self) -> None:
        before = time.time_ns() // 1_000_000
        identifier = new_id()
        after = time.time_ns() // 1_000_000

        assert before <= identifier.int >> 80 <= after

    async def test_ids_in_sequence_are_time_ordered_and_unique(self) -> None:
        identifiers = [new_id() for _ in range(1000)]

        timestamps = [identifier.int >> 80 for identifier in identifiers]
        assert timestamps == sorted(timestamps)
        assert len(set(identifiers)) == 1000
        assert all(identifier.version == 7 for identifier in identifiers)
