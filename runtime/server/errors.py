"""Every error leaves the server as `{"error": {"type", "message"}}` with a
status that says whose fault it was. No traceback ever reaches a client."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from runtime.errors import (
    ComponentUnavailableError,
    ModelComposeError,
    NotFoundError,
    PromptTooLongError,
    QueueFullError,
    QueueUnavailableError,
    RuntimeFailure,
    UserError,
)
from runtime.workflow.tasks import TooManyTasksError

logger = logging.getLogger(__name__)


class ServiceUnavailable(RuntimeFailure):
    """The server is still loading its models, is stopping, or failed to start."""

    error_type = "unavailable"


def status_for(error: ModelComposeError) -> int:
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(
        error, TooManyTasksError | ServiceUnavailable | QueueFullError | QueueUnavailableError
    ):
        return 503
    if isinstance(error, ComponentUnavailableError):  # its model failed to load
        return 503
    if isinstance(error, UserError):
        return 400
    return 500


def retry_headers(status: int) -> dict[str, str] | None:
    """A 503 is temporary (loading, stopping, full): say when to try again."""
    return {"Retry-After": "1"} if status == 503 else None


def error_response(status: int, type_: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"error": {"type": type_, "message": message, **extra}},
        status,
        headers=retry_headers(status),
    )


def json_kind(value: Any) -> str:
    """What a JSON value is, in words: `an array`, `a string`..."""
    if value is None:
        return "null"
    kinds = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }
    return kinds.get(type(value), type(value).__name__)


# Pydantic's type errors → what the field must be, in JSON's words. The
# request models are strict: `"output_only": 0` is refused, not read as false.
EXPECTED = {
    "dict_type": "a JSON object",
    "model_attributes_type": "a JSON object",
    "bool_type": "true or false",
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "list_type": "an array",
}


def describe_body(item: dict[str, Any]) -> str:
    """The body as a whole is not a JSON object."""
    value = item.get("input")
    if item.get("type") == "missing":
        return "the request body is empty; send a JSON object"
    if isinstance(value, bytes):
        return "the request body must be a JSON object sent with 'Content-Type: application/json'"
    return f"the request body must be a JSON object, got {json_kind(value)}"


def describe_validation(error: RequestValidationError) -> str:
    """Pydantic's error list → one sentence a person can act on."""
    problems = []
    for item in error.errors():
        if tuple(item.get("loc", ())) == ("body",):
            return describe_body(item)
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        message = item.get("msg", "is invalid")
        if item.get("type") == "extra_forbidden":
            message = "unknown field"
        elif item.get("type") == "missing":
            message = "is required"
        elif item.get("type") in EXPECTED:
            message = f"must be {EXPECTED[item['type']]}, got {json_kind(item.get('input'))}"
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems) or "the request is invalid"


def unreadable_body(error: RequestValidationError | HTTPException) -> str | None:
    """Why the request body could not be read as JSON at all, for both APIs
    (FastAPI itself says only "There was an error parsing the body"), or
    None when it could."""
    if isinstance(error, RequestValidationError):
        for item in error.errors():
            if item.get("type") == "json_invalid":
                reason = item.get("ctx", {}).get("error", "invalid JSON")
                return f"the request body is not valid JSON: {reason}"
        return None
    cause = error.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return (
            f"the request body is not valid JSON: it is not UTF-8 text "
            f"(byte {cause.start} is {cause.object[cause.start : cause.start + 1]!r})"
        )
    if isinstance(cause, RecursionError):
        return "the request body is not valid JSON: it is nested too deeply"
    return None


def install_error_handlers(app: FastAPI) -> None:
    """The model-compose API's handlers (the /v1 app has its own)."""

    @app.exception_handler(ModelComposeError)
    async def known_error(request: Request, error: ModelComposeError) -> JSONResponse:
        extra: dict[str, Any] = {}
        if isinstance(error, PromptTooLongError):
            extra = {"prompt_tokens": error.prompt_tokens, "context_length": error.context_length}
        return error_response(status_for(error), error.error_type, str(error), **extra)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        message = unreadable_body(error) or describe_validation(error)
        return error_response(400, "invalid_request", message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        messages = {
            404: f"no route {request.method} {request.url.path}",
            405: f"method {request.method} is not allowed on {request.url.path}",
        }
        message = messages.get(error.status_code) or unreadable_body(error) or str(error.detail)
        type_ = {404: "not_found", 405: "method_not_allowed"}.get(
            error.status_code, "invalid_request"
        )
        response = error_response(error.status_code, type_, message)
        response.headers.update(error.headers or {})  # e.g. Allow on a 405
        return response

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            500, "internal_error", "the server failed on this request (see its log)"
        )
