"""JSON schemas as grammars: "the output validates against the schema" made true.

llama.cpp's converter (`llama_cpp.llama_grammar.json_schema_to_gbnf`, the
Python twin of llama-server's) turns a schema into GBNF, but it enforces
only part of JSON Schema and silently drops the rest: `minimum`, `not`,
`uniqueItems`, a `pattern` next to `maxLength`, the siblings of `anyOf` or
`$ref`, `required` names that are not in `properties`... A grammar that
drops a constraint lets through output that does not validate. So a schema
is checked first, and every keyword that constrains values but would not be
enforced is refused, naming it and where it is; annotations (`title`,
`description`, `default`, `format`...) and keywords JSON Schema does not
define are let through, as validators do.

Pure Python: the conversion itself (llama_cpp's module) is imported only
when a schema is converted.
"""

from __future__ import annotations

import json
from typing import Any

from runtime.engine.gbnf import GrammarError, syntax_problem

TYPES = ("string", "number", "integer", "boolean", "null", "object", "array")
# Keywords that only describe: never a reason to refuse, never enforced.
ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "$schema",
        "$id",
        "$anchor",
        "$comment",
        "$defs",
        "definitions",
        "deprecated",
        "readOnly",
        "writeOnly",
        "format",
        "contentMediaType",
        "contentEncoding",
    }
)
# Keywords that constrain values and that the converter does not enforce.
UNENFORCED = frozenset(
    {
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "uniqueItems",
        "contains",
        "minContains",
        "maxContains",
        "minProperties",
        "maxProperties",
        "patternProperties",
        "propertyNames",
        "dependentRequired",
        "dependentSchemas",
        "dependencies",
        "unevaluatedProperties",
        "unevaluatedItems",
        "additionalItems",
        "not",
        "if",
        "then",
        "else",
        "allOf",
        "$dynamicRef",
        "$recursiveRef",
    }
)
# The converter's string formats; other formats are annotations (plain strings).
ENFORCED_FORMATS = ("date", "time", "date-time", "uuid")


Path = tuple[str | int, ...]


class SchemaError(GrammarError):
    """A JSON schema that is invalid, or that the grammar could not enforce;
    `path`: the keys that lead to the problem inside the schema."""

    error_type = "invalid_json_schema"

    def __init__(self, message: str, name: str = "json_schema", path: Path = ()) -> None:
        super().__init__(message, name)
        self.path = path


def schema_grammar(schema: Any) -> str:
    """The GBNF grammar whose every output is JSON valid against `schema`;
    `SchemaError` naming the problem when there is none."""
    check_schema(schema)
    from runtime.engine.llama.grammar import json_schema_gbnf

    try:
        grammar = json_schema_gbnf(json.dumps(schema))
    except RecursionError:
        raise SchemaError("the JSON schema nests too deeply") from None
    except Exception as error:  # the converter asserts and raises what it meets
        raise SchemaError(f"the JSON schema cannot be turned into a grammar: {error}") from None
    problem = syntax_problem(grammar)
    if problem is not None:
        # The converter writes what it cannot translate (regex escapes such as
        # \d in a `pattern`) into the grammar as it is.
        raise SchemaError(
            f"the JSON schema cannot be turned into a grammar: its {problem} "
            "(a 'pattern' may use regex syntax the converter does not translate, such as \\d)"
        )
    return grammar


def any_object_grammar() -> str:
    """The grammar of any JSON object (llama.cpp's json.gbnf)."""
    from runtime.engine.llama.grammar import JSON_OBJECT_GBNF

    return JSON_OBJECT_GBNF


def check_schema(schema: Any) -> None:
    """`SchemaError` for a schema that is not one, or that says something the
    grammar would not enforce."""
    if not isinstance(schema, dict):
        raise SchemaError(f"a JSON schema must be an object, got {_kind(schema)}")
    _check(schema, ())


def _fail(path: Path, message: str, key: str | None = None) -> SchemaError:
    """The error of the schema at `path` (of its keyword `key`, when it is one's)."""
    where = f" at {dotted(path)}" if path else ""
    return SchemaError(f"JSON schema{where}: {message}", path=path if key is None else (*path, key))


def dotted(path: Path) -> str:
    """`("properties", "tags", "items", 0)` → `properties.tags.items[0]`."""
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else f".{key}" if text else key
    return text


def _kind(value: Any) -> str:
    return {bool: "a boolean", str: "a string", list: "a list", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _check(schema: Any, path: Path) -> None:
    if isinstance(schema, bool):
        raise _fail(path, "a boolean schema is not supported; use {} for any value")
    if not isinstance(schema, dict):
        raise _fail(path, f"a schema must be an object, got {_kind(schema)}")
    for keyword in schema:
        if keyword in UNENFORCED and not (keyword == "uniqueItems" and schema[keyword] is False):
            raise _fail(
                path, f"'{keyword}' is not supported: the grammar cannot enforce it", keyword
            )
    _check_combinations(schema, path)
    _check_type(schema, path)
    _check_object(schema, path)
    _check_array(schema, path)
    _check_string(schema, path)
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        raise _fail(path, "'enum' must be a non-empty list")
    for container in ("$defs", "definitions"):
        defs = schema.get(container, {})
        if not isinstance(defs, dict):
            raise _fail((*path, container), "must be an object of schemas")
        for name, sub in defs.items():
            _check(sub, (*path, container, name))


def _constraints(schema: dict[str, Any], *allowed: str) -> list[str]:
    """The keywords of `schema` that say something beyond `allowed` and annotations."""
    return [k for k in schema if k not in ANNOTATIONS and k not in allowed]


def _check_combinations(schema: dict[str, Any], path: Path) -> None:
    ref = schema.get("$ref")
    if ref is not None:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise _fail(path, f"only local references ('#/...') are supported, got {ref!r}")
        extra = _constraints(schema, "$ref")
        if extra:
            raise _fail(
                path,
                f"'{extra[0]}' next to '$ref' is not supported (it would be ignored)",
                extra[0],
            )
    unions = [k for k in ("anyOf", "oneOf") if k in schema]
    if len(unions) > 1:
        raise _fail(path, "'anyOf' and 'oneOf' together are not supported")
    for keyword in unions:
        options = schema[keyword]
        if not isinstance(options, list) or not options:
            raise _fail((*path, keyword), "must be a non-empty list of schemas")
        extra = _constraints(schema, keyword)
        if extra:
            raise _fail(
                path,
                f"'{extra[0]}' next to '{keyword}' is not supported (it would be ignored)",
                extra[0],
            )
        for index, option in enumerate(options):
            _check(option, (*path, keyword, index))


def _check_type(schema: dict[str, Any], path: Path) -> None:
    kind = schema.get("type")
    if kind is None:
        return
    kinds = kind if isinstance(kind, list) else [kind]
    if not kinds or any(not isinstance(k, str) or k not in TYPES for k in kinds):
        raise _fail((*path, "type"), f"{kind!r} is not a type (use {', '.join(TYPES)})")
    if isinstance(kind, list):
        extra = _constraints(schema, "type", "enum", "const")
        if extra:
            raise _fail(
                path,
                f"'{extra[0]}' next to a list of types is not supported (it would be "
                "ignored); use anyOf with one schema per type",
                extra[0],
            )


def _check_object(schema: dict[str, Any], path: Path) -> None:
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        raise _fail((*path, "properties"), "must be an object of schemas")
    for name, sub in properties.items():
        _check(sub, (*path, "properties", name))
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise _fail((*path, "required"), "must be a list of property names")
    for name in required:
        if name not in properties:
            raise _fail(
                path,
                f"the required property '{name}' is not in 'properties' (the grammar "
                "writes only the properties it knows)",
                "required",
            )
    additional = schema.get("additionalProperties")
    if additional is not None and not isinstance(additional, bool):
        _check(additional, (*path, "additionalProperties"))


def _check_array(schema: dict[str, Any], path: Path) -> None:
    if "items" in schema and "prefixItems" in schema:
        raise _fail(path, "'items' next to 'prefixItems' is not supported (it would be ignored)")
    items = schema.get("items")
    if isinstance(items, list):
        for index, sub in enumerate(items):
            _check(sub, (*path, "items", index))
    elif items is not None:
        _check(items, (*path, "items"))
    prefix = schema.get("prefixItems")
    if prefix is not None:
        if not isinstance(prefix, list):
            raise _fail((*path, "prefixItems"), "must be a list of schemas")
        for index, sub in enumerate(prefix):
            _check(sub, (*path, "prefixItems", index))
    _check_bounds(schema, path, "minItems", "maxItems")


def _check_string(schema: dict[str, Any], path: Path) -> None:
    pattern = schema.get("pattern")
    if pattern is not None:
        if not isinstance(pattern, str):
            raise _fail((*path, "pattern"), "must be a string")
        if not (pattern.startswith("^") and pattern.endswith("$")):
            raise _fail((*path, "pattern"), "must be anchored: start with ^ and end with $")
    lengths = [k for k in ("minLength", "maxLength") if k in schema]
    if lengths and (pattern is not None or schema.get("format") in ENFORCED_FORMATS):
        other = "'pattern'" if pattern is not None else f"the format {schema['format']!r}"
        raise _fail(path, f"'{lengths[0]}' next to {other} is not supported (it would be ignored)")
    _check_bounds(schema, path, "minLength", "maxLength")


def _check_bounds(schema: dict[str, Any], path: Path, low: str, high: str) -> None:
    for key in (low, high):
        value = schema.get(key)
        whole = isinstance(value, int) and not isinstance(value, bool)
        if value is not None and not (whole and value >= 0):
            raise _fail((*path, key), f"must be a whole number ≥ 0, got {value!r}")
    if schema.get(low, 0) > schema.get(high, schema.get(low, 0)):
        raise _fail(path, f"'{low}' is larger than '{high}'")
