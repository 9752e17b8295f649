"""Who may call: the service-link API key on every API call, the issuer on every operation.

TrovoTech's v1 reference sends the key as ``X-TW-SERVICE-LINK-API-KEY``; FleetFi's client for
the seeds' endpoints sent ``Authorization: Bearer <key>``. Both are accepted (the first when a
request has both), compared in constant time. A missing or wrong key is 401. Operations name
their issuer in the body (``issuer_id``, as FleetFi sent it); an issuer other than the one the
key belongs to is 403.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from sandboxes.trovotech.config import TrovoTechSandboxSettings
from sandboxes.trovotech.errors import invalid_api_key, issuer_not_authorized, missing_api_key

SERVICE_LINK_HEADER = "X-TW-SERVICE-LINK-API-KEY"


def presented_api_key(request: Request) -> str | None:
    """The key a request carries, from either header."""
    key = request.headers.get(SERVICE_LINK_HEADER)
    if key:
        return key
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def require_api_key(request: Request) -> None:
    """Refuse (401) a request without this sandbox's API key."""
    settings: TrovoTechSandboxSettings = request.app.state.settings
    presented = presented_api_key(request)
    if presented is None:
        raise missing_api_key()
    expected = settings.api_key.get_secret_value()
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise invalid_api_key()


def authorize_issuer(settings: TrovoTechSandboxSettings, issuer_id: str | None) -> None:
    """Refuse (403) an operation for an issuer this key does not act for."""
    if issuer_id is not None and not hmac.compare_digest(
        issuer_id.encode(), settings.issuer_id.encode()
    ):
        raise issuer_not_authorized(issuer_id)
