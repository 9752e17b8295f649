"""Settings: prefixed and unprefixed environment names, production refusals, gateway parsing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.config import DEFAULT_UPSTREAMS, GatewaySettings
from services.ledger_fee.config import LedgerSettings
from shared.settings import Environment, ProductionConfigError, is_sandbox_url

POSTGRES_URL = "postgresql+asyncpg://kassa:secret@db.internal:5432/kassa"
REAL_SIGNING_KEY = "-----BEGIN PRIVATE KEY-----\nnot-a-dev-key\n-----END PRIVATE KEY-----"
REAL_API_KEY_SECRET = "b1f0c5e2a7d94e3f8c6a2d1e0f9b8a7c"
AMBIENT_PREFIXES = ("GATEWAY_", "LEDGER_", "KASSA_")
AMBIENT_NAMES = ("DATABASE_URL", "REDIS_URL", "LOG_LEVEL", "IDENTITY_PUBLIC_KEYS")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing from the ambient environment reaches the settings under test."""
    for name in list(os.environ):
        if name.upper().startswith(AMBIENT_PREFIXES) or name.upper() in AMBIENT_NAMES:
            monkeypatch.delenv(name, raising=False)


def production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KASSA_ENV", "production")


def real_gateway_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_IDENTITY_SIGNING_KEY", REAL_SIGNING_KEY)
    monkeypatch.setenv("GATEWAY_API_KEY_SECRET", REAL_API_KEY_SECRET)


class TestDatabaseUrl:
    async def test_prefixed_name_is_read(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LEDGER_DATABASE_URL", POSTGRES_URL)

        assert LedgerSettings().database_url == POSTGRES_URL

    async def test_unprefixed_name_is_the_fallback(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DATABASE_URL", POSTGRES_URL)

        assert LedgerSettings().database_url == POSTGRES_URL

    async def test_prefixed_name_wins_over_unprefixed(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://shared/kassa")
        monkeypatch.setenv("LEDGER_DATABASE_URL", POSTGRES_URL)

        assert LedgerSettings().database_url == POSTGRES_URL

    async def test_default_is_sqlite_under_var_dir(self) -> None:
        settings = LedgerSettings()

        assert settings.var_dir == "var"
        assert settings.database_url == "sqlite+aiosqlite:///var/ledger_fee.db"

    async def test_default_follows_a_configured_var_dir(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("LEDGER_VAR_DIR", str(tmp_path))

        assert LedgerSettings().database_url == f"sqlite+aiosqlite:///{tmp_path}/ledger_fee.db"

    async def test_unprefixed_fallback_is_limited_to_the_listed_names(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PORT", "9999")

        assert LedgerSettings().port == 8004

    async def test_other_service_prefix_is_ignored(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("GATEWAY_DATABASE_URL", POSTGRES_URL)

        assert LedgerSettings().database_url.startswith("sqlite+aiosqlite:///")


class TestProductionDatabase:
    async def test_sqlite_is_refused_in_production(self, monkeypatch: pytest.MonkeyPatch) -> None:
        production(monkeypatch)

        with pytest.raises(ValidationError, match="DATABASE_URL must be PostgreSQL"):
            LedgerSettings()

    async def test_refusal_is_a_production_config_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        production(monkeypatch)
        monkeypatch.setenv("LEDGER_DATABASE_URL", "sqlite+aiosqlite:///var/prod.db")

        with pytest.raises(ValidationError) as caught:
            LedgerSettings()

        cause = caught.value.errors()[0]["ctx"]["error"]
        assert isinstance(cause, ProductionConfigError)
        assert "ledger_fee refuses to start in production" in str(cause)

    async def test_postgres_is_accepted_in_production(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        production(monkeypatch)
        monkeypatch.setenv("DATABASE_URL", POSTGRES_URL)

        settings = LedgerSettings()

        assert settings.env is Environment.PRODUCTION
        assert settings.is_production

    async def test_sqlite_is_fine_outside_production(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("KASSA_ENV", "test")

        settings = LedgerSettings()

        assert settings.env is Environment.TEST
        assert not settings.is_production


class TestGatewayProduction:
    async def test_missing_secrets_are_refused_by_env_name(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        production(monkeypatch)
        monkeypatch.setenv("GATEWAY_DATABASE_URL", POSTGRES_URL)

        with pytest.raises(ValidationError) as caught:
            GatewaySettings()

        message = str(caught.value)
        assert "GATEWAY_IDENTITY_SIGNING_KEY is missing" in message
        assert "GATEWAY_API_KEY_SECRET is missing" in message
        assert "DATABASE_URL must be PostgreSQL" not in message

    async def test_development_api_key_secret_is_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        production(monkeypatch)
        real_gateway_secrets(monkeypatch)
        monkeypatch.setenv("GATEWAY_DATABASE_URL", POSTGRES_URL)
        monkeypatch.setenv("GATEWAY_API_KEY_SECRET", "dev-only-api-key-secret")

        with pytest.raises(ValidationError) as caught:
            GatewaySettings()

        message = str(caught.value)
        assert "GATEWAY_API_KEY_SECRET is missing or a development default" in message
        assert "GATEWAY_IDENTITY_SIGNING_KEY" not in message

    async def test_every_problem_is_listed_at_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        production(monkeypatch)

        with pytest.raises(ValidationError) as caught:
            GatewaySettings()

        message = str(caught.value)
        assert "DATABASE_URL must be PostgreSQL" in message
        assert "GATEWAY_API_KEY_SECRET" in message
        assert "GATEWAY_IDENTITY_SIGNING_KEY" in message

    async def test_real_secrets_and_postgres_are_accepted(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        production(monkeypatch)
        real_gateway_secrets(monkeypatch)
        monkeypatch.setenv("GATEWAY_DATABASE_URL", POSTGRES_URL)

        settings = GatewaySettings()

        assert settings.is_production
        assert settings.api_key_secret is not None
        assert settings.api_key_secret.get_secret_value() == REAL_API_KEY_SECRET
        assert settings.identity_signing_key is not None
        assert settings.identity_signing_key.get_secret_value() == REAL_SIGNING_KEY

    async def test_development_secrets_are_fine_outside_production(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("GATEWAY_API_KEY_SECRET", "dev-only-api-key-secret")

        settings = GatewaySettings()

        assert settings.api_key_secret is not None
        assert settings.identity_signing_key is None


class TestIsSandboxUrl:
    @pytest.mark.parametrize(
        "url",
        [
            "http://localhost:8000",
            "http://127.0.0.1:8001/api",
            "https://etims-api-sbx.kra.go.ke",
            "https://expansion-testnet.bantu.network",
            "https://api.devnet.solana.com",
            "https://sandbox.trovotech.example",
            "http://[::1]:8080",
        ],
    )
    async def test_local_and_sandbox_hosts_are_sandbox(self, url: str) -> None:
        assert is_sandbox_url(url)

    @pytest.mark.parametrize(
        "url",
        [
            "https://etims-api.kra.go.ke",
            "https://api.mainnet-beta.solana.com",
            "http://[2001:db8::1]:8080",
            "",
        ],
    )
    async def test_production_hosts_are_not_sandbox(self, url: str) -> None:
        assert not is_sandbox_url(url)

    @pytest.mark.parametrize("url", ["https://api127.example.com", "https://subxero.com/x"])
    async def test_only_whole_host_labels_count(self, url: str) -> None:
        assert not is_sandbox_url(url)

    async def test_a_sandbox_word_in_the_path_does_not_count(self) -> None:
        assert not is_sandbox_url("https://etims-api.kra.go.ke/sandbox/testnet")


class TestGatewayUpstreams:
    async def test_pairs_are_parsed_and_trailing_slash_stripped(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("GATEWAY_UPSTREAMS", "ledger=http://a:1,custody=http://b:2/")

        assert GatewaySettings().upstreams == {"ledger": "http://a:1", "custody": "http://b:2"}

    async def test_spaces_and_empty_items_are_tolerated(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("GATEWAY_UPSTREAMS", " ledger = http://a:1 ,, ")

        assert GatewaySettings().upstreams == {"ledger": "http://a:1"}

    @pytest.mark.parametrize("value", ["ledger", "=http://a:1", "ledger=", "ledger=http://a:1,x"])
    async def test_malformed_pairs_are_a_validation_error(
        self, monkeypatch: pytest.MonkeyPatch, value: str
    ) -> None:
        monkeypatch.setenv("GATEWAY_UPSTREAMS", value)

        with pytest.raises(ValidationError, match="expected name=url"):
            GatewaySettings()

    async def test_default_routing_table_when_unset(self) -> None:
        assert GatewaySettings().upstreams == DEFAULT_UPSTREAMS

    async def test_public_routes_use_the_same_form(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("GATEWAY_PUBLIC_ROUTES", "/api/hooks/x=custody")

        assert GatewaySettings().public_routes == {"/api/hooks/x": "custody"}


class TestBootstrapAdminKey:
    async def test_read_from_the_kassa_name_without_prefix(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("KASSA_BOOTSTRAP_ADMIN_KEY", "kas_live_bootstrap")

        key = GatewaySettings().bootstrap_admin_key

        assert key is not None
        assert key.get_secret_value() == "kas_live_bootstrap"

    async def test_unset_by_default(self) -> None:
        assert GatewaySettings().bootstrap_admin_key is None
