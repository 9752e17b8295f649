"""Caller identity: the gateway signs who called, services verify it with the public key only.

The assertion is an EdDSA (Ed25519) JWT in the ``X-Kassa-Caller`` header: ``kid`` in the
header; ``iss`` the gateway, ``aud`` the one service it is meant for (a token for the ledger is
useless at custody), ``sub`` the API key id, ``owner``, ``scp`` scopes, ``svc`` the calling
service when the key is a service identity, ``rid`` the request id, ``exp`` at most 60 s away.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, Request

from shared.errors import Forbidden, Unauthorized

ASSERTION_HEADER = "x-kassa-caller"
ISSUER = "kassa-gateway"
MAX_TTL_S = 60
ALGORITHM = "EdDSA"
# Clock difference tolerated between the gateway's and a service's hosts.
LEEWAY_S = 5
ADMIN_SCOPE = "admin"
REUSABLE_CACHE_SIZE = 10_000


class InvalidAssertion(Unauthorized):
    slug = "invalid-caller-assertion"
    title = "Caller assertion missing or invalid"


class CallerNotAllowed(Forbidden):
    slug = "caller-not-allowed"
    title = "Caller not allowed"


@dataclass(frozen=True)
class Caller:
    """Who is calling, as the gateway vouches for it."""

    key_id: str
    owner: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    service: str | None = None
    request_id: str | None = None

    def has_scope(self, scope: str) -> bool:
        """``admin`` covers every scope; ``ledger`` covers ``ledger:write``."""
        if scope in self.scopes or ADMIN_SCOPE in self.scopes:
            return True
        return ":" in scope and scope.split(":", 1)[0] in self.scopes


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """A stable id derived from the key itself, so no separate key-id setting can drift."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_signing_key() -> tuple[str, str]:
    """A new Ed25519 key pair as (private PEM, public PEM), for development and tests."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return private_pem, public_pem_of(private_pem)


def public_pem_of(private_pem: str) -> str:
    """The public half of a private PEM."""
    private = _load_private(private_pem)
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _load_private(private_pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the gateway signing key must be an Ed25519 private key")
    return key


def load_public_keys(pem_text: str) -> dict[str, Ed25519PublicKey]:
    """Every Ed25519 public key in a text of PEM blocks, by key id (several during rotation)."""
    keys: dict[str, Ed25519PublicKey] = {}
    marker = "-----END PUBLIC KEY-----"
    for block in pem_text.replace("\\n", "\n").split(marker):
        if "-----BEGIN PUBLIC KEY-----" not in block:
            continue
        key = serialization.load_pem_public_key((block.strip() + "\n" + marker + "\n").encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("caller assertion keys must be Ed25519 public keys")
        keys[key_id_of(key)] = key
    return keys


class AssertionSigner:
    """Signs caller assertions; only the gateway holds one."""

    def __init__(self, private_pem: str, ttl_s: int = 30) -> None:
        if not 0 < ttl_s <= MAX_TTL_S:
            raise ValueError(f"assertion lifetime must be 1..{MAX_TTL_S} seconds")
        self._key = _load_private(private_pem.replace("\\n", "\n"))
        self.key_id = key_id_of(self._key.public_key())
        self._ttl_s = ttl_s
        self._reusable: dict[tuple[Caller, str], tuple[float, str]] = {}

    def sign(self, caller: Caller, audience: str, now: float | None = None) -> str:
        """An assertion that ``caller`` is calling ``audience``."""
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": audience,
            "sub": caller.key_id,
            "owner": caller.owner,
            "scp": sorted(caller.scopes),
            "iat": issued,
            "exp": issued + self._ttl_s,
        }
        if caller.service:
            claims["svc"] = caller.service
        if caller.request_id:
            claims["rid"] = caller.request_id
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.key_id})

    def sign_reusable(self, caller: Caller, audience: str) -> str:
        """An assertion without a request id, reused for half its lifetime.

        An Ed25519 signature costs about 60 µs, more than the rest of the gateway's hot path;
        a token bound to the key and audience only (the request id travels in
        ``X-Request-ID``) can be shared by that key's requests for ``ttl/2`` seconds and still
        leaves every receiver at least ``ttl/2`` seconds of validity.
        """
        anonymous = Caller(
            key_id=caller.key_id, owner=caller.owner, scopes=caller.scopes, service=caller.service
        )
        now = time.time()
        cached = self._reusable.get((anonymous, audience))
        if cached is not None and cached[0] > now:
            return cached[1]
        token = self.sign(anonymous, audience, now=now)
        if len(self._reusable) >= REUSABLE_CACHE_SIZE:
            self._reusable.clear()
        self._reusable[(anonymous, audience)] = (now + self._ttl_s / 2, token)
        return token


class AssertionVerifier:
    """Verifies assertions meant for one service, with the gateway's public keys."""

    def __init__(self, public_keys: Mapping[str, Ed25519PublicKey], audience: str) -> None:
        if not public_keys:
            raise ValueError("no gateway public key configured (IDENTITY_PUBLIC_KEYS)")
        self._keys = dict(public_keys)
        self._audience = audience
        # Verified tokens and when they stop being acceptable: the gateway reuses a token for
        # many requests, and checking an Ed25519 signature again each time buys nothing.
        self._verified: dict[str, tuple[float, Caller]] = {}

    def verify(self, token: str | None) -> Caller:
        """The caller the token vouches for; :class:`InvalidAssertion` says why not."""
        if not token:
            raise InvalidAssertion("This service accepts requests only through the gateway.")
        cached = self._verified.get(token)
        if cached is not None and cached[0] > time.time():
            return cached[1]
        caller, expires_at = self._verify_signature(token)
        if len(self._verified) >= REUSABLE_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (expires_at + LEEWAY_S, caller)
        return caller

    def _verify_signature(self, token: str) -> tuple[Caller, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidAssertion("The caller assertion is malformed.") from exc
        key = self._keys.get(str(header.get("kid", "")))
        if key is None or header.get("alg") != ALGORITHM:
            raise InvalidAssertion("The caller assertion is signed by an unknown key.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=ISSUER,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidAssertion("The caller assertion has expired.") from exc
        except jwt.PyJWTError as exc:
            raise InvalidAssertion(f"The caller assertion is invalid: {exc}.") from exc
        if int(claims["exp"]) - int(claims["iat"]) > MAX_TTL_S:
            raise InvalidAssertion("The caller assertion lives longer than 60 seconds.")
        caller = Caller(
            key_id=str(claims["sub"]),
            owner=str(claims.get("owner", "")),
            scopes=frozenset(str(scope) for scope in claims.get("scp", [])),
            service=claims.get("svc"),
            request_id=claims.get("rid"),
        )
        return caller, float(claims["exp"])


def get_caller(request: Request) -> Caller:
    """The verified caller of this request (set by the identity middleware)."""
    caller = getattr(request.state, "caller", None)
    if not isinstance(caller, Caller):
        raise InvalidAssertion("This service accepts requests only through the gateway.")
    return caller


async def _caller_dependency(request: Request) -> Caller:
    # A coroutine: FastAPI would run a plain function in a worker thread on every request.
    return get_caller(request)


CallerDep = Annotated[Caller, Depends(_caller_dependency)]
# What require_* return: an async dependency handing the admitted caller on.
CallerCheck = Callable[[Caller], Awaitable[Caller]]


def require_scopes(*scopes: str) -> CallerCheck:
    """A dependency admitting callers that hold every one of ``scopes`` (403 otherwise)."""

    async def dependency(caller: CallerDep) -> Caller:
        missing = [scope for scope in scopes if not caller.has_scope(scope)]
        if missing:
            raise CallerNotAllowed(f"This route requires the scope(s): {', '.join(missing)}.")
        return caller

    return dependency


def require_any_scope(*scopes: str) -> CallerCheck:
    """A dependency admitting callers that hold at least one of ``scopes`` (403 otherwise)."""

    async def dependency(caller: CallerDep) -> Caller:
        if not any(caller.has_scope(scope) for scope in scopes):
            raise CallerNotAllowed(f"This route requires one of the scopes: {', '.join(scopes)}.")
        return caller

    return dependency


def require_callers(*services: str, scopes: Iterable[str] = ()) -> CallerCheck:
    """A dependency admitting only the named service identities (and admins)."""
    allowed = frozenset(services)
    needed = tuple(scopes)

    async def dependency(caller: CallerDep) -> Caller:
        if caller.service not in allowed and ADMIN_SCOPE not in caller.scopes:
            names = ", ".join(sorted(allowed))
            raise CallerNotAllowed(f"This route admits only the services: {names}.")
        missing = [scope for scope in needed if not caller.has_scope(scope)]
        if missing:
            raise CallerNotAllowed(f"This route requires the scope(s): {', '.join(missing)}.")
        return caller

    return dependency
