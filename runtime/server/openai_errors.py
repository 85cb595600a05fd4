"""Errors under /v1 in OpenAI's shape: `{"error": {"message", "type", "param",
"code"}}`, which OpenAI clients turn into their own exception types. The /v1
app installs these handlers; the model-compose API has its own (errors.py).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from runtime.errors import InputError, ModelComposeError, PromptTooLongError
from runtime.server.errors import retry_headers, status_for, unreadable_body

logger = logging.getLogger(__name__)


class OpenAIRequestError(ModelComposeError):
    """A request the /v1 API refuses, with OpenAI's `param` and `code`."""

    def __init__(
        self,
        message: str,
        param: str | None = None,
        code: str | None = None,
        status: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.param = param
        self.code = code
        self.status = status
        self.headers = headers or {}


def unsupported(param: str, value: str | None = None) -> OpenAIRequestError:
    """A parameter, or one of its values, this server does not implement."""
    if value is None:
        return OpenAIRequestError(
            f"'{param}' is not supported by this server.", param, "unsupported_parameter"
        )
    return OpenAIRequestError(
        f"'{param}': {value} is not supported by this server.", param, "unsupported_value"
    )


def model_not_found(model: str, available: list[str]) -> OpenAIRequestError:
    return OpenAIRequestError(
        f"The model '{model}' does not exist (available: {', '.join(available)})",
        "model",
        "model_not_found",
        status=404,
    )


def context_length_exceeded(error: PromptTooLongError, param: str) -> OpenAIRequestError:
    return OpenAIRequestError(
        f"This model's maximum context length is {error.context_length} tokens, but the "
        f"request has {error.prompt_tokens} prompt tokens.",
        param,
        "context_length_exceeded",
    )


def error_type_for(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_error(error: BaseException) -> tuple[int, dict[str, Any]]:
    """(HTTP status, `{"error": {...}}`) for anything a /v1 request raised."""
    param: str | None = None
    code: str | None = None
    if isinstance(error, OpenAIRequestError):
        status, message, param, code = error.status, str(error), error.param, error.code
    elif isinstance(error, RequestValidationError):
        status, code = 400, None
        message, param = invalid_fields(error)
    elif isinstance(error, ModelComposeError):
        status, message, code = status_for(error), str(error), error.error_type
        if isinstance(error, InputError):
            param = error.name
    else:
        logger.error("unhandled error on /v1", exc_info=error)
        status, message = 500, "The server failed on this request (see its log)."
    return status, openai_body(status, message, param, code)


def openai_body(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error object (also what the middleware's refusals send on /v1)."""
    body = {"message": message, "type": error_type_for(status), "param": param, "code": code}
    return {"error": body}


def error_response(error: BaseException) -> JSONResponse:
    status, body = openai_error(error)
    headers = retry_headers(status) or {}
    if isinstance(error, OpenAIRequestError):
        headers.update(error.headers)  # e.g. Allow on a 405
    return JSONResponse(body, status, headers=headers)


def invalid_fields(error: RequestValidationError) -> tuple[str, str | None]:
    """Pydantic's errors → (one message naming the fields, the first field)."""
    problems: list[str] = []
    params: list[str] = []
    unreadable = unreadable_body(error)
    if unreadable is not None:
        return sentence(unreadable), None
    for item in error.errors():
        kind = item.get("type")
        param = field_path(item.get("loc", ()))
        if not param:
            return "The request body must be a JSON object.", None
        params.append(param)
        if kind == "missing":
            problems.append(f"Missing required parameter: '{param}'.")
            continue
        message = str(item.get("msg", "is invalid")).removeprefix("Value error, ")
        problems.append(f"Invalid value for '{param}': {message[:1].lower()}{message[1:]}.")
    return " ".join(problems) or "The request is invalid.", params[0] if params else None


def sentence(message: str) -> str:
    """The model-compose API's words as OpenAI writes its messages."""
    return message[:1].upper() + message[1:] + "."


def field_path(loc: Any) -> str:
    """`("body", "messages", 0, "content")` → `messages[0].content`."""
    path = ""
    for part in loc:
        if part == "body" and not path:
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def http_error(request: Request, error: HTTPException) -> OpenAIRequestError:
    """No /v1 route for the path (OpenAI's 404), or not with this method
    (a 405 naming the methods allowed, as HTTP says and OpenAI clients
    handle), or a body that could not be read."""
    method, path, headers = request.method, request.url.path, dict(error.headers or {})
    if error.status_code == 404:
        return OpenAIRequestError(f"Invalid URL ({method} {path})", status=404)
    if error.status_code == 405:
        allowed = headers.get("Allow", "")
        message = f"Method {method} is not allowed on {path} (allowed: {allowed})"
        return OpenAIRequestError(message, status=405, headers=headers)
    unreadable = unreadable_body(error)
    message = sentence(unreadable) if unreadable else str(error.detail)
    return OpenAIRequestError(message, status=error.status_code, headers=headers)


def install_openai_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http(request: Request, error: HTTPException) -> JSONResponse:
        return error_response(http_error(request, error))

    @app.exception_handler(RequestValidationError)
    @app.exception_handler(ModelComposeError)
    @app.exception_handler(Exception)
    async def any_error(request: Request, error: Exception) -> JSONResponse:
        return error_response(error)
