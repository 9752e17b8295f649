"""RFC 9457 problem+json for every error an app can answer.

Domain code raises typed errors (subclasses of :class:`KassaError`); one set of handlers renders
them, FastAPI's validation errors (422 naming each failing field), Starlette's HTTP errors
(404, 405, ...) and anything unexpected (500 with the request id, never a stack trace).
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, ClassVar

import orjson
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from shared.context import current_request_id

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:kassa:problem:"


class FieldError(BaseModel):
    """One failing input: where it is, what is wrong."""

    field: str = Field(description="Dotted path of the input, e.g. body.amount or header.x-api-key")
    message: str
    type: str = Field(description="Machine-readable error kind, e.g. missing, int_parsing")


class Problem(BaseModel):
    """The RFC 9457 problem document every error reply carries."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None


class KassaError(Exception):
    """Base of every typed error; subclasses fix status, problem type and title."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        errors: Sequence[FieldError] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = headers or {}
        self.errors = list(errors) if errors else None
        self.extensions = extensions

    @classmethod
    def problem_type(cls) -> str:
        return PROBLEM_TYPE_BASE + cls.slug


class BadRequest(KassaError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class Unauthorized(KassaError):
    status = 401
    slug = "unauthorized"
    title = "Unauthorized"


class Forbidden(KassaError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class NotFound(KassaError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(KassaError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class UnprocessableContent(KassaError):
    status = 422
    slug = "unprocessable-content"
    title = "Unprocessable content"


class ServiceUnavailable(KassaError):
    status = 503
    slug = "service-unavailable"
    title = "Service unavailable"


def problem_response(
    *,
    status: int,
    problem_type: str,
    title: str,
    detail: str | None = None,
    instance: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> Response:
    """Render one problem+json reply; every error path in Kassa ends here."""
    body: dict[str, Any] = {"type": problem_type, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    request_id = current_request_id()
    if request_id:
        body["request_id"] = request_id
    if errors:
        body["errors"] = [error.model_dump() for error in errors]
    if extensions:
        body.update({k: v for k, v in extensions.items() if k not in body})
    return Response(
        content=orjson.dumps(body),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def render_kassa_error(error: KassaError, instance: str | None = None) -> Response:
    """The reply for a typed error."""
    return problem_response(
        status=error.status,
        problem_type=error.problem_type(),
        title=error.title,
        detail=error.detail,
        instance=instance,
        errors=error.errors,
        headers=error.headers,
        extensions=error.extensions,
    )


def internal_error_response() -> Response:
    """500 with the request id so an operator can find the logged stack trace."""
    return problem_response(
        status=500,
        problem_type=KassaError.problem_type(),
        title=KassaError.title,
        detail="An unexpected error occurred; quote the request_id when reporting it.",
    )


def _field_path(location: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in location)


def validation_field_errors(raw_errors: Sequence[Any]) -> list[FieldError]:
    """FastAPI/pydantic error dicts as field errors with dotted paths (body.items.0.qty)."""
    return [
        FieldError(
            field=_field_path(error.get("loc", ())),
            message=str(error.get("msg", "invalid")),
            type=str(error.get("type", "invalid")),
        )
        for error in raw_errors
    ]


async def _kassa_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KassaError)
    return render_kassa_error(exc, instance=request.url.path)


async def _validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = validation_field_errors(exc.errors())
    fields = ", ".join(error.field for error in errors[:5])
    return problem_response(
        status=422,
        problem_type=PROBLEM_TYPE_BASE + "validation-error",
        title="Request validation failed",
        detail=f"Invalid input: {fields}" if fields else "Invalid input",
        instance=request.url.path,
        errors=errors,
    )


async def _http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = HTTPStatus(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != status.phrase else None
    return problem_response(
        status=exc.status_code,
        problem_type=PROBLEM_TYPE_BASE + status.phrase.lower().replace(" ", "-"),
        title=status.phrase,
        detail=detail,
        instance=request.url.path,
        headers=dict(exc.headers) if exc.headers else None,
    )


class DatabaseUnavailable(ServiceUnavailable):
    slug = "database-unavailable"
    title = "Database unavailable"


async def _database_down_handler(request: Request, exc: Exception) -> Response:
    # A lost or refused database connection is the server's temporary condition, not a bug:
    # 503 tells clients (and the gateway's retries) to come back, and nothing was committed.
    error = DatabaseUnavailable(
        "The database is unreachable; nothing was changed. Retry shortly.",
        headers={"Retry-After": "1"},
    )
    return render_kassa_error(error, instance=request.url.path)


# Errors that mean "the database is not there", as opposed to "the query is wrong".
DATABASE_DOWN_ERRORS: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    ConnectionError,
    TimeoutError,
)


def install_error_handlers(app: FastAPI) -> None:
    """Render every error of the app as problem+json (unhandled ones: see the middleware)."""
    app.add_exception_handler(KassaError, _kassa_error_handler)
    for error_type in DATABASE_DOWN_ERRORS:
        app.add_exception_handler(error_type, _database_down_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)


def problem_responses(*errors: type[KassaError]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route, so the OpenAPI document lists the problems it can return."""
    documented: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        documented[error.status] = {
            "model": Problem,
            "content": {PROBLEM_CONTENT_TYPE: {}},
            "description": error.title,
        }
    return documented


def json_bytes(value: Any) -> bytes:
    """Compact JSON for bodies and hashes."""
    return orjson.dumps(value)
