"""`output_schema:` on an action: the answer is JSON valid against a schema
(the engine's grammar makes it so), and the action's result is its parsed
value, so that later jobs and the workflow's output bind `${output.field}`."""

from __future__ import annotations

import json
from typing import Any

from runtime.binding import render
from runtime.engine.json_schema import schema_grammar
from runtime.engine.types import FinishReason, GenerationResult
from runtime.errors import InputError, RuntimeFailure


def action_grammar(action: Any, scope: dict[str, Any]) -> str | None:
    """The grammar of the action's rendered `output_schema`; None: free text
    (no schema, or a binding that rendered to null). A schema written in the
    file was checked when it loaded; one from a binding is checked here
    (`SchemaError`, an input error, names the problem)."""
    schema = render(action.output_schema, scope)
    if schema is None:
        return None
    if not isinstance(schema, dict):
        raise InputError(f"output_schema must be a JSON schema (a mapping), got {schema!r}")
    return schema_grammar(schema)


def parsed_output(result: GenerationResult) -> Any:
    """The answer's JSON value. The grammar guarantees it parses unless the
    generation ended early: cut by the length limit or a stop sequence."""
    try:
        return json.loads(result.text)
    except json.JSONDecodeError as error:
        if result.finish_reason == FinishReason.LENGTH:
            raise RuntimeFailure(
                f"the answer was cut after {result.usage.completion_tokens} tokens, before "
                "its JSON was complete: raise max_output_length"
            ) from None
        raise RuntimeFailure(
            f"the answer is not the JSON its output_schema asks for ({error}); did a stop "
            "sequence end it early?"
        ) from None
