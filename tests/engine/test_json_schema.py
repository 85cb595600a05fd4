"""JSON schemas as grammars (engine.json_schema): what the converter would
not enforce is refused, naming the keyword and where it is; what it enforces
converts; typical schemas (pydantic's, the openai client's strict ones) pass."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, Field

from runtime.engine.gbnf import syntax_problem
from runtime.engine.json_schema import SchemaError, check_schema, schema_grammar
from runtime.errors import InputError


class Address(BaseModel):
    street: str
    city: str = Field(description="the city")


class Person(BaseModel):
    name: str
    age: int
    email: str | None = None
    tags: list[str]
    address: Address
    kind: Literal["friend", "colleague"]


ACCEPTED: list[dict[str, Any]] = [
    {},
    {"type": "object"},
    {"type": "string", "maxLength": 5},
    {"type": ["string", "null"]},
    {"enum": ["a", 1, None]},
    {"const": {"x": 1}},
    {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3},
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}]},
    {"type": "string", "pattern": "^[A-Z][a-z]+$", "description": "a name"},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "email"},  # an annotation: any string
    {"type": "array", "items": {"type": "string"}, "uniqueItems": False},
    {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "X"},
    {"$ref": "#/$defs/a", "$defs": {"a": {"type": "integer"}}, "description": "d"},
    Person.model_json_schema(),
    to_strict_json_schema(Person),
]

REFUSED: list[tuple[Any, str]] = [
    ([], "a JSON schema must be an object, got a list"),
    (
        {"type": "integer", "minimum": 0},
        "'minimum' is not supported: the grammar cannot enforce it",
    ),
    ({"properties": {"a": {"not": {"type": "null"}}}}, "at properties.a: 'not' is not supported"),
    ({"type": "array", "uniqueItems": True}, "'uniqueItems' is not supported"),
    ({"allOf": [{"type": "string"}]}, "'allOf' is not supported"),
    ({"type": "strnig"}, "at type: 'strnig' is not a type"),
    (
        {"type": "object", "required": ["a"]},
        "the required property 'a' is not in 'properties'",
    ),
    (
        {"type": "string", "pattern": "^a+$", "maxLength": 3},
        "'maxLength' next to 'pattern' is not supported",
    ),
    ({"type": "string", "pattern": "a+"}, "at pattern: must be anchored"),
    ({"anyOf": [{"type": "string"}], "type": "string"}, "'type' next to 'anyOf'"),
    ({"$ref": "#/$defs/a", "maxLength": 2}, "'maxLength' next to '$ref'"),
    ({"$ref": "https://example.com/s.json"}, "only local references"),
    ({"type": ["string", "null"], "maxLength": 2}, "next to a list of types"),
    ({"properties": {"a": True}}, "at properties.a: a boolean schema is not supported"),
    ({"type": "array", "minItems": -1}, "at minItems: must be a whole number ≥ 0"),
    ({"type": "array", "minItems": 3, "maxItems": 2}, "'minItems' is larger than 'maxItems'"),
    ({"enum": []}, "'enum' must be a non-empty list"),
    ({"$defs": {"a": {"minimum": 1}}}, "at $defs.a: 'minimum'"),
    ({"type": "array", "items": {}, "prefixItems": []}, "'items' next to 'prefixItems'"),
]


@pytest.mark.parametrize("schema", ACCEPTED)
def test_a_schema_the_grammar_enforces_converts_to_a_valid_grammar(schema: dict[str, Any]) -> None:
    check_schema(schema)
    assert syntax_problem(schema_grammar(schema)) is None


@pytest.mark.parametrize(("schema", "problem"), REFUSED)
def test_a_schema_the_grammar_would_not_enforce_is_refused_naming_why(
    schema: Any, problem: str
) -> None:
    with pytest.raises(SchemaError) as caught:
        schema_grammar(schema)
    assert problem in str(caught.value)
    assert isinstance(caught.value, InputError)


def test_a_pattern_the_converter_cannot_translate_is_refused_not_garbled() -> None:
    with pytest.raises(SchemaError, match=r"cannot be turned into a grammar.*\\d"):
        schema_grammar({"type": "string", "pattern": "^\\d{3}$"})


def test_a_reference_to_nothing_is_refused() -> None:
    with pytest.raises(SchemaError, match="cannot be turned into a grammar"):
        schema_grammar({"$ref": "#/$defs/missing"})


def test_conversion_leaves_the_callers_schema_as_it_was() -> None:
    schema = {"$ref": "#/$defs/a", "$defs": {"a": {"type": "integer"}}}
    schema_grammar(schema)
    assert schema == {"$ref": "#/$defs/a", "$defs": {"a": {"type": "integer"}}}
