"""Structured output on /v1: what a request asks its answer to look like, as
the one GBNF grammar the engine enforces on the answer.

Three ways to ask, at most one per request: OpenAI's `response_format`
(`json_object`: any JSON object; `json_schema`: JSON valid against a
schema; `text`: no constraint), and llama-server's own `grammar` (GBNF
text) and `json_schema` (a schema, as its /completion takes it). A schema
or grammar that cannot be used is a 400 naming the problem before anything
is generated (`invalid_json_schema`, `invalid_grammar`); what only the model's
vocabulary can tell (a grammar no token can continue) ends the generation
with the same error.
"""

from __future__ import annotations

import itertools
from typing import Any

from runtime.engine.gbnf import syntax_problem
from runtime.engine.json_schema import SchemaError, any_object_grammar, schema_grammar
from runtime.server.openai_errors import OpenAIRequestError

FORMATS = ("text", "json_object", "json_schema")
OBJECT = {"type": "object"}
# The values of `response_format` the body accepts (its OpenAPI schema).
RESPONSE_FORMAT = {
    "anyOf": [
        {"type": "object", "properties": {"type": {"const": "text"}}, "required": ["type"]},
        {
            "type": "object",
            "description": "any JSON object; `schema` (llama-server's): JSON valid against it",
            "properties": {
                "type": {"const": "json_object"},
                "schema": {"anyOf": [OBJECT, {"type": "null"}]},
            },
            "required": ["type"],
        },
        {
            "type": "object",
            "description": "JSON valid against `json_schema.schema`",
            "properties": {
                "type": {"const": "json_schema"},
                "json_schema": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "description": {"type": "string"},
                        "schema": OBJECT,
                        "strict": {"anyOf": [{"type": "boolean"}, {"type": "null"}]},
                    },
                },
            },
            "required": ["type", "json_schema"],
        },
        {"type": "null"},
    ]
}
# A `response_format` that constrains the answer (not `text`).
_CONSTRAINING_FORMAT = {
    "type": "object",
    "properties": {"type": {"enum": ["json_object", "json_schema"]}},
    "required": ["type"],
}
_GIVEN = {
    "response_format": _CONSTRAINING_FORMAT,
    "grammar": {"type": "string"},
    "json_schema": {"type": "object"},
}
# The body's rule (its OpenAPI schema): at most one of the three ways to ask.
ONE_WAY_TO_ASK = {
    "allOf": [
        {"not": {"required": [a, b], "properties": {a: _GIVEN[a], b: _GIVEN[b]}}}
        for a, b in itertools.combinations(_GIVEN, 2)
    ]
}
GRAMMAR_DOC = "a GBNF grammar (llama.cpp's format) the answer follows, from its rule `root`"
JSON_SCHEMA_DOC = "a JSON schema the answer is valid against (llama-server's field)"


def answer_grammar(
    response_format: dict[str, Any] | None,
    grammar: str | None,
    json_schema: dict[str, Any] | None,
) -> str | None:
    """The grammar a request's answer must follow; None: free text."""
    asked = [
        name
        for name, value in (
            ("response_format", format_type(response_format) not in (None, "text")),
            ("grammar", grammar is not None),
            ("json_schema", json_schema is not None),
        )
        if value
    ]
    if len(asked) > 1:
        raise OpenAIRequestError(
            f"Only one of {', '.join(repr(a) for a in asked)} may be given: each one "
            "constrains the whole answer.",
            asked[1],
        )
    if json_schema is not None:
        return schema_or_400(json_schema, "json_schema", "Invalid 'json_schema'")
    if grammar:  # llama-server's rule: an empty grammar is none
        problem = syntax_problem(grammar)
        if problem is not None:
            raise OpenAIRequestError(f"Invalid grammar: {problem}.", "grammar", "invalid_grammar")
        return grammar
    if response_format is not None:
        return format_grammar(response_format)
    return None


def format_type(response_format: dict[str, Any] | None) -> str | None:
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind is None:
        raise OpenAIRequestError(
            "Missing required parameter: 'response_format.type'.", "response_format.type"
        )
    if kind not in FORMATS:
        raise OpenAIRequestError(
            f"Invalid value for 'response_format.type': {kind!r}; use one of {', '.join(FORMATS)}.",
            "response_format.type",
        )
    return str(kind)


def format_grammar(response_format: dict[str, Any]) -> str | None:
    kind = format_type(response_format)
    if kind == "json_object":
        schema = response_format.get("schema")
        if schema is None:
            return any_object_grammar()
        return schema_or_400(schema, "response_format.schema", "Invalid 'response_format.schema'")
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        param = "response_format.json_schema"
        if spec is None:
            raise OpenAIRequestError(f"Missing required parameter: '{param}'.", param)
        if not isinstance(spec, dict):
            raise OpenAIRequestError(f"Invalid value for '{param}': must be an object.", param)
        for key, kinds, what in (
            ("name", str, "a string"),
            ("description", str, "a string"),
            ("strict", bool | None, "a boolean"),
        ):
            if key in spec and not isinstance(spec[key], kinds):
                raise OpenAIRequestError(
                    f"Invalid value for '{param}.{key}': must be {what}.", f"{param}.{key}"
                )
        name = spec.get("name")
        what = f"Invalid schema for response_format '{name}'" if name else "Invalid schema"
        return schema_or_400(spec.get("schema", {}), f"{param}.schema", what)
    return None


def schema_or_400(schema: Any, param: str, what: str) -> str:
    """The grammar of `schema`, or a 400 saying what is wrong with it."""
    if not isinstance(schema, dict):
        raise OpenAIRequestError(f"Invalid value for '{param}': must be an object.", param)
    try:
        return schema_grammar(schema)
    except SchemaError as error:
        raise OpenAIRequestError(f"{what}: {error}.", param, error.error_type) from None
