"""``AppSpec.public_paths``: a service serves the named paths without a caller assertion (a
provider's signed webhook behind the gateway's public route), and nothing else."""

from __future__ import annotations

from typing import ClassVar

from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from shared.app_factory import AppSpec, create_kassa_app
from shared.identity import AssertionSigner, generate_signing_key
from shared.routing import kassa_router
from shared.settings import KassaSettings
from tests.conftest import assertion_header, running

WEBHOOK_PATH = "/api/webhooks/provider"


class PublicPathSettings(KassaSettings):
    model_config = SettingsConfigDict(env_prefix="PUBLIC_PATH_KIT_")
    app_name: ClassVar[str] = "public_path_kit"


router = kassa_router()


@router.post(WEBHOOK_PATH)
async def webhook() -> dict[str, str]:
    return {"received": "yes"}


@router.post(WEBHOOK_PATH + "/admin")
async def beside_the_webhook() -> dict[str, str]:
    return {"admin": "yes"}


def _app(public_pem: str, tmp_url: str) -> FastAPI:
    return create_kassa_app(
        AppSpec(
            settings=PublicPathSettings(database_url=tmp_url, identity_public_keys=public_pem),
            title="public path kit",
            description="test app",
            routers=[router],
            public_paths=(WEBHOOK_PATH,),
        )
    )


class TestPublicPaths:
    async def test_a_public_path_needs_no_assertion(self, tmp_path: object) -> None:
        _private, public = generate_signing_key()
        async with running(_app(public, f"sqlite+aiosqlite:///{tmp_path}/kit.db")) as client:
            reply = await client.post(WEBHOOK_PATH)
        assert reply.status_code == 200
        assert reply.json() == {"received": "yes"}

    async def test_only_the_exact_path_is_public(self, tmp_path: object) -> None:
        private, public = generate_signing_key()
        async with running(_app(public, f"sqlite+aiosqlite:///{tmp_path}/kit.db")) as client:
            refused = await client.post(WEBHOOK_PATH + "/admin")
            admitted = await client.post(
                WEBHOOK_PATH + "/admin",
                headers=assertion_header(AssertionSigner(private), "public_path_kit"),
            )
        assert refused.status_code == 401
        assert refused.json()["type"] == "urn:kassa:problem:invalid-caller-assertion"
        assert admitted.status_code == 200
