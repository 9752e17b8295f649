"""Settings base for every Kassa app.

Each app has one settings class with its own environment prefix (``LEDGER_``, ``GATEWAY_``...).
A few names that operators already use from the guides Kassa grew from (``DATABASE_URL``,
``REDIS_URL``, ``LOG_LEVEL``, ``TROVOTECH_BASE_URL``...) are also read without the prefix, so a
pod that runs one app can set them plainly; the prefixed name wins when both are set, which lets
one ``.env`` file serve every app on a single host.

``KASSA_ENV=production`` turns configuration mistakes into a refusal to start: default or
missing secrets, a wildcard CORS origin, sandbox endpoints, or SQLite.
"""

from __future__ import annotations

import enum
import os
import re
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


class Environment(enum.StrEnum):
    """Where an app runs; production is strict about its configuration."""

    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class ProductionConfigError(ValueError):
    """Raised at start-up when production configuration is unsafe."""

    def __init__(self, app: str, problems: list[str]) -> None:
        self.problems = problems
        listing = "; ".join(problems)
        super().__init__(f"{app} refuses to start in production: {listing}")


# Hosts that only exist on a developer's machine or in a provider's sandbox.
# Hosts that only exist on a developer's machine, and the host-name words providers use for
# their sandboxes (etims-api-sbx.kra.go.ke, expansion-testnet.bantu.network, api.devnet...).
LOCAL_HOSTS = frozenset({"localhost", "::1", "0.0.0.0"})  # noqa: S104 - refused, not bound
SANDBOX_HOST_WORDS = frozenset({"localhost", "sandbox", "sbx", "testnet", "devnet"})

# The value `make run` and the tests use for development secrets; production refuses it.
DEVELOPMENT_SECRET_PREFIX = "dev-only-"  # noqa: S105 - a marker, not a secret


class _UnprefixedEnvSource(EnvSettingsSource):
    """Reads the operator-known names listed in ``unprefixed_env`` without the app prefix."""

    def __init__(self, settings_cls: type[BaseSettings], names: frozenset[str]) -> None:
        super().__init__(settings_cls, env_prefix="")
        self._names = names

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name not in self._names:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class KassaSettings(BaseSettings):
    """Configuration every app shares; subclasses set ``env_prefix`` and add their own fields."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True, populate_by_name=True)

    # The app's name in logs, metrics and the caller assertion's audience.
    app_name: ClassVar[str] = "kassa"
    # Field names also read without the prefix (operators' existing names).
    unprefixed_env: ClassVar[frozenset[str]] = frozenset(
        {"database_url", "redis_url", "log_level", "identity_public_keys"}
    )
    # Fields that must be set to a real secret in production.
    production_secrets: ClassVar[frozenset[str]] = frozenset()
    # URL fields that must not point at a sandbox or a local address in production.
    production_endpoints: ClassVar[frozenset[str]] = frozenset()

    env: Environment = Field(
        default=Environment.DEVELOPMENT,
        validation_alias="KASSA_ENV",
        description="development, test or production; production refuses unsafe configuration.",
    )
    host: str = Field(default="127.0.0.1", description="Interface the HTTP server binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="HTTP port.")
    database_url: str = Field(
        default="",
        description="postgresql+asyncpg://… or sqlite+aiosqlite:///…; empty means var/<app>.db.",
    )
    db_pool_size: int = Field(default=10, ge=1, description="Connections kept per process.")
    db_max_overflow: int = Field(default=10, ge=0, description="Extra connections under load.")
    db_pool_timeout_s: float = Field(default=5.0, gt=0, description="Wait for a free connection.")
    db_pool_pre_ping: bool = Field(
        default=True,
        description=(
            "Ping each pooled connection before use (one round trip, about 0.5 ms of CPU): a "
            "dead connection is then never handed out. Off, the first query on a dead one fails "
            "(503) and the whole pool is renewed."
        ),
    )
    redis_url: str | None = Field(default=None, description="redis://…; unset means none.")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_json: bool = Field(default=True, description="JSON lines (true) or readable text.")
    identity_public_keys: str = Field(
        default="",
        description=(
            "The gateway's Ed25519 public keys that verify caller assertions: PEM blocks, "
            "several during rotation. Required by services."
        ),
    )
    shutdown_drain_s: float = Field(
        default=0.0,
        ge=0,
        description="After SIGTERM, seconds /ready answers 503 before the server stops accepting.",
    )
    graceful_timeout_s: float = Field(
        default=20.0, gt=0, description="Longest wait for in-flight requests on shutdown."
    )
    var_dir: str = Field(default="var", description="Where embedded-mode files live.")
    # WEB_CONCURRENCY (the name Heroku, gunicorn and uvicorn use) is read as the default, not
    # through the unprefixed source, so that <P>WORKERS still wins when both are set.
    workers: int = Field(
        default_factory=lambda: int(os.environ.get("WEB_CONCURRENCY") or 1),
        ge=1,
        description="Server processes sharing the port; WEB_CONCURRENCY when unset.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        unprefixed = _UnprefixedEnvSource(settings_cls, cls.unprefixed_env)
        return (init_settings, env_settings, unprefixed, dotenv_settings, file_secret_settings)

    @model_validator(mode="after")
    def _default_database_and_production_rules(self) -> KassaSettings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.var_dir}/{self.app_name}.db"
        if self.env is Environment.PRODUCTION:
            problems = self.production_problems()
            if problems:
                raise ProductionConfigError(self.app_name, problems)
        return self

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    def production_problems(self) -> list[str]:
        """Every reason this configuration is unsafe for production; subclasses extend it."""
        problems: list[str] = []
        if self.database_url.startswith("sqlite"):
            problems.append("DATABASE_URL must be PostgreSQL (SQLite is the embedded default)")
        for name in sorted(self.production_secrets):
            if not _is_real_secret(getattr(self, name)):
                problems.append(f"{self._env_name(name)} is missing or a development default")
        for name in sorted(self.production_endpoints):
            url = getattr(self, name)
            if url and is_sandbox_url(str(url)):
                problems.append(f"{self._env_name(name)} points at a sandbox or local address")
        return problems

    def _env_name(self, field_name: str) -> str:
        field = type(self).model_fields[field_name]
        if isinstance(field.validation_alias, str):
            return field.validation_alias
        prefix = str(self.model_config.get("env_prefix", ""))
        return f"{prefix}{field_name}".upper()


def _is_real_secret(value: object) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None:
        return False
    text = str(value)
    return bool(text) and not text.startswith(DEVELOPMENT_SECRET_PREFIX)


def is_sandbox_url(url: str) -> bool:
    """True when a URL points at a local address or a provider's sandbox/test network.

    Whole host labels are compared, so ``api127.example.com`` or ``subxero.com`` are not
    mistaken for a loopback address or a sandbox.
    """
    host = (urlsplit(url).hostname or "").lower()
    if host in LOCAL_HOSTS or host.startswith("127."):
        return True
    return any(word in SANDBOX_HOST_WORDS for word in re.split(r"[.\-]", host))
