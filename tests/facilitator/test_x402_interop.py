"""The real ``x402`` package against Kassa: its SVM client builds the payment on the Solana
sandbox, its ``HTTPFacilitatorClient`` verifies and settles through the gateway with an API key,
exactly as a resource server configured with ``…/v1/facilitator`` would."""

from __future__ import annotations

from typing import Any

from x402.http import FacilitatorConfig, HTTPFacilitatorClient
from x402.http.facilitator_client_base import CreateHeadersAuthProvider
from x402.mechanisms.svm.exact import ExactSvmClientScheme
from x402.mechanisms.svm.signers import KeypairSigner
from x402.schemas import PaymentPayload, PaymentRequirements

from sandboxes.solana_rpc import SANDBOX_USDC_MINT
from services.facilitator.app import create_app
from tests.conftest import DatabaseFactory
from tests.facilitator.conftest import Wallets
from tests.facilitator.support import facilitator_settings
from tests.gateway.support import add_key, gateway_settings, migrated_gateway_database
from tests.servers import free_port, served
from tests.solana_sandbox import DEVNET, TOKEN_PROGRAM, USDC, Sandbox, token_amount


async def test_the_x402_client_pays_through_the_gateway_exactly_once(
    facilitator_database: str,
    databases: DatabaseFactory,
    chain: Sandbox,
    wallets: Wallets,
    signing_key_pair: tuple[str, str],
) -> None:
    settings = facilitator_settings(
        facilitator_database, chain, [wallets.fee_payer], signing_key_pair[1]
    )
    gateway_database = await migrated_gateway_database(databases)
    api_key = await add_key(gateway_database, scopes=["facilitator:settle", "read"])
    with (
        served(create_app(settings), free_port()) as facilitator_url,
        served(
            create_gateway_app(gateway_database, signing_key_pair[0], facilitator_url),
            free_port(),
        ) as gateway_url,
    ):
        headers = {"Authorization": f"Bearer {api_key}"}
        client = HTTPFacilitatorClient(
            FacilitatorConfig(
                url=f"{gateway_url}/v1/facilitator",
                auth_provider=CreateHeadersAuthProvider(
                    lambda: {"verify": headers, "settle": headers, "supported": headers}
                ),
            )
        )
        supported = client.get_supported()  # synchronous in the x402 client
        kind = next(k for k in supported.kinds if k.x402_version == 2)
        assert kind.network == DEVNET
        requirements = PaymentRequirements(
            scheme="exact",
            network=DEVNET,
            asset=SANDBOX_USDC_MINT,
            amount="2500000",
            pay_to=str(wallets.merchant.pubkey()),
            max_timeout_seconds=60,
            extra=dict(kind.extra or {}),
        )
        buyer = ExactSvmClientScheme(KeypairSigner(wallets.payer), rpc_url=chain.url)
        payload = PaymentPayload(
            payload=buyer.create_payment_payload(requirements), accepted=requirements
        )
        verified = await client.verify(payload, requirements)
        assert verified.is_valid, verified
        assert verified.payer == str(wallets.payer.pubkey())
        settled = await client.settle(payload, requirements)
        assert settled.success, settled
        again = await client.settle(payload, requirements)
        assert again.transaction == settled.transaction
        await client.aclose()
    merchant = wallets.merchant.pubkey()
    assert token_amount(chain, merchant, USDC, TOKEN_PROGRAM) == 2_500_000
    assert token_amount(chain, wallets.payer.pubkey(), USDC, TOKEN_PROGRAM) == 7_500_000


def create_gateway_app(database_url: str, signing_key: str, facilitator_url: str) -> Any:
    from gateway.app import create_app as create_gateway

    return create_gateway(
        gateway_settings(database_url, signing_key, {"facilitator": facilitator_url})
    )
