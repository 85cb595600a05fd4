"""The GBNF grammar of a forced function call (`tool_choice` "required" or a
named function): `<tool_call>` blocks (`engine.tool_calls`), each a JSON
object naming one of the functions, with arguments that follow that
function's `parameters` schema. The engine constrains the answer with it
(`GenerationRequest.grammar`), so the call always parses.

The JSON schemas become GBNF with llama-cpp-python's converter
(`llama_cpp.llama_grammar`, llama.cpp's json_schema_to_grammar.py), one
converter for all the functions so that their rules share one namespace.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from llama_cpp.llama_grammar import SchemaConverter

from runtime.engine.tool_calls import CLOSE, OPEN

# What a function without `parameters` takes: any JSON object.
ANY_OBJECT: dict[str, Any] = {"type": "object"}


class ToolSchemaError(ValueError):
    """A function's `parameters` that cannot be made into a grammar."""

    def __init__(self, index: int, name: str, reason: str) -> None:
        super().__init__(
            f"the parameters of function '{name}' are not a usable JSON schema: {reason}"
        )
        self.index = index


def tool_call_grammar(functions: Sequence[Mapping[str, Any]], *, parallel: bool) -> str:
    """GBNF for one call to one of `functions` (OpenAI function objects), or
    with `parallel` one or more calls, a newline between two."""
    if not functions:
        raise ValueError("a call grammar needs at least one function")
    converter = SchemaConverter(
        prop_order={"name": 0, "arguments": 1},
        allow_fetch=False,
        dotall=False,
        raw_pattern=False,
    )
    calls = []
    for index, function in enumerate(functions):
        name = str(function["name"])
        parameters = function.get("parameters") or ANY_OBJECT
        try:
            # Refs ("#/$defs/...") point into the parameters schema: resolve
            # them there, before it is nested in the call's schema.
            arguments = converter.resolve_refs(copy.deepcopy(parameters), f"fn{index}")
            schema = {
                "type": "object",
                "properties": {"name": {"const": name}, "arguments": arguments},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            calls.append(converter.visit(schema, f"fn{index}"))
        except Exception as error:  # the converter raises what it likes on bad schemas
            raise ToolSchemaError(index, name, str(error) or type(error).__name__) from error
    block = f"{_literal(OPEN + chr(10))} ( {' | '.join(calls)} ) {_literal(chr(10) + CLOSE)}"
    root = 'call ( "\\n" call )*' if parallel else "call"
    return f"root ::= {root}\ncall ::= {block}\n{converter.format_grammar()}\n"


def _literal(text: str) -> str:
    """A GBNF string literal (JSON's escapes are GBNF's for these characters)."""
    return json.dumps(text)
