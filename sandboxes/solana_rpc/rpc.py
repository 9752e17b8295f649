"""JSON-RPC 2.0 as a Solana node speaks it over HTTP POST.

One request object or a batch (an array, answered by an array in the same order, without the
notifications); a request without ``id`` is a notification and gets no reply. Malformed JSON is
-32700 with ``id: null``, a non-request -32600, an unknown method -32601, bad parameters -32602
(jsonrpc.org/specification; the Solana RPC answers HTTP 200 with these bodies). An unexpected
failure inside a method is logged and answered -32603 without details.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from sandboxes.solana_rpc.errors import (
    RpcError,
    internal_error,
    invalid_params,
    invalid_request,
    method_not_found,
    parse_error,
)
from sandboxes.solana_rpc.methods import METHODS, Method, Params
from sandboxes.solana_rpc.sandbox import Sandbox
from shared.logging import get_logger

log = get_logger(__name__)

Reply = dict[str, Any]


def _error_reply(request_id: Any, error: RpcError) -> Reply:
    return {"jsonrpc": "2.0", "error": error.as_json(), "id": request_id}


def _valid_id(request: dict[str, Any]) -> bool:
    request_id = request.get("id")
    return request_id is None or (
        isinstance(request_id, str | int | float) and not isinstance(request_id, bool)
    )


def _is_request(request: Any) -> bool:
    return (
        isinstance(request, dict)
        and request.get("jsonrpc") == "2.0"
        and isinstance(request.get("method"), str)
        and _valid_id(request)
    )


class JsonRpc:
    """Answers JSON-RPC bodies with the sandbox's methods."""

    def __init__(self, sandbox: Sandbox, methods: Mapping[str, Method] = METHODS) -> None:
        self._sandbox = sandbox
        self._methods = methods

    async def answer(self, body: bytes) -> Reply | list[Reply] | None:
        """The reply to ``body``: an object, an array for a batch, ``None`` if nothing to say."""
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error_reply(None, parse_error())
        if not isinstance(payload, list):
            return await self._answer_one(payload)
        if not payload:
            return _error_reply(None, invalid_request())
        replies = [await self._answer_one(request) for request in payload]
        return [reply for reply in replies if reply is not None] or None

    async def _answer_one(self, request: Any) -> Reply | None:
        if not _is_request(request):
            request_id = request.get("id") if isinstance(request, dict) else None
            valid = isinstance(request, dict) and _valid_id(request)
            return _error_reply(request_id if valid else None, invalid_request())
        try:
            reply = {
                "jsonrpc": "2.0",
                "result": await self._call(request["method"], request.get("params")),
                "id": request.get("id"),
            }
        except RpcError as error:
            reply = _error_reply(request.get("id"), error)
        return reply if "id" in request else None

    async def _call(self, name: str, params: Any) -> Any:
        method = self._methods.get(name)
        if method is None:
            raise method_not_found()
        if params is not None and not isinstance(params, list):
            raise invalid_params("Invalid params: expected an array of positional parameters")
        arguments = Params(params or [])
        chain = self._sandbox.chain
        try:
            return await self._sandbox.run(lambda: method(chain, arguments))
        except RpcError:
            raise
        except Exception as exc:
            log.exception("rpc_method_failed", method=name, error=type(exc).__name__)
            raise internal_error() from exc
