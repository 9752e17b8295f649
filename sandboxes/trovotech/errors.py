"""Errors as TrovoTech answers them: ``{"error": "error-…", "data": "<field>", "message": "…"}``.

TrovoTech's API reference gives one error structure for every 4xx and 5xx: a machine code
(``error-invalid-primary-signer-public-key``), the parameter affected and a sentence. The sandbox
answers the same way, validation errors included (400 naming the first failing field), so the
custody client is written against the real shape rather than Kassa's problem+json.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response


class TrovoTechError(Exception):
    """An error reply: HTTP status, TrovoTech error code, affected parameter, message, extras."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        data: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.data = data
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON body TrovoTech sends."""
        return {"error": self.error, "data": self.data, "message": self.message, **self.extra}

    def response(self) -> Response:
        """The error as an HTTP reply."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def missing_api_key() -> TrovoTechError:
    return TrovoTechError(
        401,
        "error-missing-api-key",
        "An API key is required: X-TW-SERVICE-LINK-API-KEY or Authorization: Bearer <key>.",
        data="X-TW-SERVICE-LINK-API-KEY",
    )


def invalid_api_key() -> TrovoTechError:
    return TrovoTechError(
        401, "error-invalid-api-key", "Invalid API key.", data="X-TW-SERVICE-LINK-API-KEY"
    )


def issuer_not_authorized(issuer_id: str) -> TrovoTechError:
    return TrovoTechError(
        403,
        "error-issuer-not-authorized",
        f"Issuer {issuer_id!r} is not authorized for this API key.",
        data="issuer_id",
    )


def not_found(error: str, what: str, data: str, identifier: str) -> TrovoTechError:
    return TrovoTechError(404, error, f"{what} {identifier!r} not found.", data=data)


def conflict(error: str, message: str, data: str | None = None) -> TrovoTechError:
    return TrovoTechError(409, error, message, data=data)


def bad_request(error: str, message: str, data: str | None = None) -> TrovoTechError:
    return TrovoTechError(400, error, message, data=data)


def _field(location: tuple[Any, ...] | list[Any]) -> str:
    # ("body", "fraction_owned") -> "fraction_owned": TrovoTech names the parameter only.
    parts = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _trovotech_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TrovoTechError)
    return exc.response()


async def _validation_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {
            # A body that is not JSON is the body's fault, not the character position's.
            "data": "body" if error.get("type") == "json_invalid" else _field(error["loc"]),
            "message": str(error.get("msg", "invalid")),
        }
        for error in exc.errors()
    ]
    first = problems[0] if problems else {"data": "body", "message": "Invalid request."}
    error = TrovoTechError(
        400, "error-invalid-parameter", first["message"], data=first["data"], errors=problems
    )
    return error.response()


async def _http_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "error-not-found", 405: "error-method-not-allowed"}.get(
        exc.status_code, "error-http"
    )
    return TrovoTechError(
        exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {})
    ).response()


def install_error_handlers(app: FastAPI) -> None:
    """Render every error the sandbox raises, and FastAPI's own, in TrovoTech's shape."""
    app.add_exception_handler(TrovoTechError, _trovotech_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
