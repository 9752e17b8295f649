"""The routing table: which upstream a path goes to, under which rate limit and scopes.

Built once from configuration. ``/v1/<name>/<path>`` goes to upstream ``<name>`` as
``/<path>``; public paths (webhooks) go to their upstream unchanged and without a key; rules
override the route class, the scopes that admit a request and the service identities allowed,
for every path under their prefix (the longest prefix wins).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from gateway.config import RouteRule

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The gateway's own API; authenticated like any route, served by the gateway itself.
ADMIN_UPSTREAM = "admin"


class RouteClass(enum.StrEnum):
    """Which rate limit applies."""

    PUBLIC = "public"
    AUTH = "auth"
    VERIFY = "verify"


@dataclass(frozen=True, slots=True)
class Route:
    """Where one request goes and what it takes to get there."""

    upstream: str
    upstream_path: str
    public: bool
    route_class: RouteClass
    scopes: frozenset[str]
    callers: frozenset[str]
    template: str  # the metrics label: never the raw path, whose ids would explode cardinality


def default_scopes(upstream: str, method: str) -> frozenset[str]:
    """Reading needs ``read`` (or ``<svc>:read``); anything else needs ``write``."""
    if method in SAFE_METHODS:
        return frozenset({"read", "write", f"{upstream}:read", f"{upstream}:write"})
    return frozenset({"write", f"{upstream}:write"})


class RoutingTable:
    """Resolves a request path to a :class:`Route`; ``None`` means not the proxy's business."""

    def __init__(
        self,
        upstreams: Iterable[str],
        public_routes: Mapping[str, str],
        rules: Sequence[RouteRule],
    ) -> None:
        self._upstreams = frozenset(upstreams) | {ADMIN_UPSTREAM}
        self._public = dict(public_routes)
        self._rules = sorted(rules, key=lambda rule: len(rule.prefix), reverse=True)

    def resolve(self, method: str, path: str) -> Route | None:
        public_upstream = self._public.get(path)
        if public_upstream is not None:
            return self._route(public_upstream, path, path, method, public=True, template=path)
        if not path.startswith("/v1/"):
            return None
        name, _, rest = path[4:].partition("/")
        if name not in self._upstreams:
            return None
        upstream_path = "/" + rest
        template = f"/v1/{name}/{{path}}"
        return self._route(name, path, upstream_path, method, public=False, template=template)

    def _route(
        self, upstream: str, path: str, upstream_path: str, method: str, public: bool, template: str
    ) -> Route:
        rule = self._rule_for(path)
        default_class = RouteClass.PUBLIC if public else RouteClass.AUTH
        scopes = default_scopes(upstream, method)
        if upstream == ADMIN_UPSTREAM:
            scopes = frozenset()  # the admin API checks its own scopes per endpoint
        if rule is not None and rule.scopes is not None:
            scopes = frozenset(rule.scopes)
        if rule is not None and rule.route_class is not None:
            default_class = RouteClass(rule.route_class)
            template = rule.prefix if not public else template
        return Route(
            upstream=upstream,
            upstream_path=upstream_path,
            public=public,
            route_class=default_class,
            scopes=frozenset() if public else scopes,
            callers=frozenset(rule.callers or ()) if rule is not None else frozenset(),
            template=template,
        )

    def _rule_for(self, path: str) -> RouteRule | None:
        for rule in self._rules:
            if path.startswith(rule.prefix):
                return rule
        return None


class ClientAddress:
    """The client's IP: the peer, or from ``X-Forwarded-For`` when the peer is a trusted proxy.

    The header is read right to left, skipping trusted proxies; the first address not trusted
    is the client. Anything a client writes further left is ignored, so it cannot choose its
    own rate-limit bucket.
    """

    def __init__(self, trusted: Iterable[str]) -> None:
        self._trusted = [ipaddress.ip_network(network, strict=False) for network in trusted]

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)

    def of(self, peer: str | None, forwarded_for: str | None) -> str:
        client = peer or "unknown"
        if not self._trusted or forwarded_for is None or not self._is_trusted(client):
            return client
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else client
