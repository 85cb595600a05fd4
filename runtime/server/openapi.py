"""The OpenAPI document: what each route can answer, as clients see it.

FastAPI writes the document from the routes; this module adds what it cannot
infer: the errors each route answers (a 400 for a bad request, never FastAPI's
undocumented 422), the 503's Retry-After header, the Server-Sent Events of
streaming routes (`text/event-stream`, each event's `data` a JSON object of a
documented shape), and the bearer key when `controller.api_key` is set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter
from starlette.routing import BaseRoute

SCHEMAS = "#/components/schemas/"

ERROR_DESCRIPTIONS = {
    400: "The request is invalid: the message says what is wrong and where.",
    401: "The API key is missing or wrong (controller.api_key is set).",
    404: "The workflow, task or model named does not exist.",
    413: "The request body is larger than controller.max_request_size.",
    429: "Too many wrong API keys from this address: retry after Retry-After seconds.",
    500: "The model failed on this request (the server log has the details).",
    503: "The server is loading its models, stopping, or full: retry after Retry-After seconds.",
}

RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}


def error_responses(model: Any, *statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for the error statuses a route answers, each
    with the body `model` (a 503 also with its Retry-After header)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": model, "description": ERROR_DESCRIPTIONS[status]}
        if status == 503:
            entry["headers"] = RETRY_AFTER
        responses[status] = entry
    return responses


def event_stream(event: Any, *, final: str | None = None) -> dict[str, Any]:
    """The `text/event-stream` media type of a response whose every event's
    `data` is a JSON `event` (a model or a union of models), as FastAPI
    documents its own SSE routes; `final` is a last event that is not JSON
    (the /v1 streams' `[DONE]`). Models the event refers to are hoisted into
    the components by `document`."""
    schema = TypeAdapter(event).json_schema(ref_template=SCHEMAS + "{model}", mode="serialization")
    data: dict[str, Any] = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": schema,
    }
    if final is not None:
        data = {"anyOf": [data, {"type": "string", "const": final}]}
    return {
        "itemSchema": {
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": data,
                "event": {"type": "string"},
                "id": {"type": "string"},
                "retry": {"type": "integer", "minimum": 0},
            },
        }
    }


@dataclass(frozen=True)
class Served:
    """What this server serves, for the document to name: its workflow ids
    (and `__default__`), the model names /v1 accepts, whether a key is
    required, the paths open without it, and the OpenAI API's prefix (its
    errors have OpenAI's shape)."""

    workflows: list[str]
    models: list[str]
    openai_prefix: str
    api_key: bool = False
    open_paths: tuple[str, ...] = ()


def document(app: FastAPI, served: Served, mounted: Sequence[BaseRoute]) -> dict[str, Any]:
    """The app's OpenAPI document, with the routes of the apps it mounts
    (`mounted`, at their full paths), built once."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=[*app.routes, *mounted],
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for operation in operations(doc):
        # Every request error is a 400 here (errors.py); 422 is never sent.
        operation["responses"].pop("422", None)
        for response in operation["responses"].values():
            for content in response.get("content", {}).values():
                hoist_definitions(content, schemas)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    name_the_choices(doc, served)
    link_runs_to_their_tasks(doc)
    if served.api_key:
        require_key(doc, served.open_paths, served.openai_prefix)
    app.openapi_schema = doc
    return doc


def operations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for methods in doc.get("paths", {}).values() for op in methods.values()]


def hoist_definitions(node: Any, schemas: dict[str, Any]) -> None:
    """Move the `$defs` of an inline schema (an event stream's) into the
    document's components, where its `$ref`s point."""
    if isinstance(node, dict):
        for name, schema in node.pop("$defs", {}).items():
            if schemas.setdefault(name, schema) != schema:
                raise ValueError(f"two different schemas are named {name} in the API document")
        for value in node.values():
            hoist_definitions(value, schemas)
    elif isinstance(node, list):
        for value in node:
            hoist_definitions(value, schemas)


def name_the_choices(doc: dict[str, Any], served: Served) -> None:
    """The workflow ids and model names this server has, as enums: a client
    (and /docs) can pick one; any other name is a 404."""
    choices = {"workflow_id": served.workflows, "model_id": served.models}
    for operation in operations(doc):
        for parameter in operation.get("parameters", []):
            if parameter.get("in") == "path" and parameter["name"] in choices:
                parameter["schema"]["enum"] = choices[parameter["name"]]
    schemas = doc["components"]["schemas"]
    if "RunRequest" in schemas:
        workflow_id = schemas["RunRequest"]["properties"]["workflow_id"]
        workflow_id["anyOf"] = [{"enum": served.workflows}, {"type": "null"}]
    for body in ("ChatCompletionBody", "CompletionBody", "ResponsesBody"):
        if body in schemas:
            schemas[body]["properties"]["model"]["enum"] = served.models


TASK_ID = "$response.body#/task_id"


def link_runs_to_their_tasks(doc: dict[str, Any]) -> None:
    """OpenAPI links from a run's answer to polling and cancelling its task
    (for clients that follow links, and schemathesis's stateful tests)."""
    paths = doc.get("paths", {})
    targets = {
        "GetTask": ("get", "/tasks/{task_id}"),
        "CancelTask": ("post", "/tasks/{task_id}/cancel"),
    }
    links = {
        name: {"operationId": ops[method]["operationId"], "parameters": {"task_id": TASK_ID}}
        for name, (method, suffix) in targets.items()
        for path, ops in paths.items()
        if method in ops and path.endswith(suffix)
    }
    for path, ops in paths.items():
        if "post" in ops and path.endswith("/runs") and links:
            ops["post"]["responses"]["200"]["links"] = links


def require_key(doc: dict[str, Any], open_paths: tuple[str, ...], openai_prefix: str) -> None:
    """Every operation but /health takes `Authorization: Bearer <key>` and
    answers 401 without it, 429 after too many wrong ones (middleware.py),
    in OpenAI's shape on its API."""
    doc["components"]["securitySchemes"] = {
        "apiKey": {"type": "http", "scheme": "bearer", "description": "controller.api_key"}
    }
    for path, methods in doc.get("paths", {}).items():
        if path.rstrip("/") in open_paths:
            continue
        openai = path.startswith(openai_prefix + "/")
        error_ref = {"$ref": SCHEMAS + ("OpenAIError" if openai else "ErrorResponse")}
        for operation in methods.values():
            operation["security"] = [{"apiKey": []}]
            operation["responses"]["401"] = {
                "description": ERROR_DESCRIPTIONS[401],
                "content": {"application/json": {"schema": error_ref}},
            }
            operation["responses"]["429"] = {
                "description": ERROR_DESCRIPTIONS[429],
                "headers": RETRY_AFTER,
                "content": {"application/json": {"schema": error_ref}},
            }
