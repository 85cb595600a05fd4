"""Workflow inputs as form fields: which widget each inferred input type gets,
what a field shows first, and how what the user entered becomes the run's
input (or a message saying why it cannot).

Pure functions, no NiceGUI: the form (form.py) and the tests share them.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass
from typing import Any

from runtime.binding import InputField
from runtime.binding.casts import to_text


class Widget(enum.StrEnum):
    TEXTAREA = "textarea"  # text, markdown: answers and prompts are often several lines
    LINE = "line"  # string: one line
    NUMBER = "number"
    INTEGER = "integer"
    SWITCH = "switch"
    SELECT = "select"
    JSON = "json"  # json, object, list and every `X[]`: a JSON editor


class JsonKind(enum.StrEnum):
    ANY = "any"
    OBJECT = "object"
    LIST = "list"


_WIDGETS = {
    "text": Widget.TEXTAREA,
    "markdown": Widget.TEXTAREA,
    "stream": Widget.TEXTAREA,
    "string": Widget.LINE,
    "number": Widget.NUMBER,
    "integer": Widget.INTEGER,
    "boolean": Widget.SWITCH,
    "select": Widget.SELECT,
    "json": Widget.JSON,
    "object": Widget.JSON,
    "list": Widget.JSON,
}


def widget_for(field: InputField) -> Widget:
    if field.type.endswith("[]"):
        return Widget.JSON
    return _WIDGETS.get(field.type, Widget.TEXTAREA)


def json_kind(field: InputField) -> JsonKind:
    if field.type.endswith("[]") or field.type == "list":
        return JsonKind.LIST
    if field.type == "object":
        return JsonKind.OBJECT
    return JsonKind.ANY


def hint(field: InputField) -> str:
    """What the field expects, under it: the type, and whether it is required
    (an optional field left empty is not sent: its default applies, or, for
    a system prompt, the model's own)."""
    kind = {
        JsonKind.LIST: "a JSON list",
        JsonKind.OBJECT: "a JSON object",
        JsonKind.ANY: "JSON",
    }
    widget = widget_for(field)
    what = kind[json_kind(field)] if widget is Widget.JSON else field.type
    if field.type.endswith("[]"):
        what = f"a JSON list of {field.type.removesuffix('[]')}"
    return f"{what}, {'required' if field.required else 'optional'}"


def initial_value(field: InputField) -> Any:
    """The value a widget starts with: the input's default in the widget's terms."""
    widget = widget_for(field)
    default = field.default
    if widget is Widget.SWITCH:
        return default is True or (isinstance(default, str) and default.lower() == "true")
    if default is None:
        return None if widget in (Widget.NUMBER, Widget.INTEGER, Widget.SELECT) else ""
    if widget in (Widget.NUMBER, Widget.INTEGER):
        try:
            number = float(default)
        except (TypeError, ValueError):
            return None
        return number if math.isfinite(number) else None
    if widget is Widget.SELECT:
        text = to_text(default)
        return text if field.options and text in field.options else None
    if widget is Widget.JSON:
        if isinstance(default, str):
            try:
                json.loads(default)
            except ValueError:
                return json.dumps(default, ensure_ascii=False)
            return default
        return json.dumps(default, ensure_ascii=False)
    return to_text(default)


@dataclass(frozen=True)
class Reading:
    """One field read back: the input value (None: not given) or why it is wrong."""

    value: Any = None
    error: str | None = None


def read_field(field: InputField, raw: Any) -> Reading:
    """What the user entered → the value to send. Empty text means "not given",
    so an optional input falls back to its default in the workflow."""
    reading = _convert(field, raw)
    if reading.error is None and reading.value is None and field.required:
        return Reading(error="required")
    return reading


def _convert(field: InputField, raw: Any) -> Reading:
    widget = widget_for(field)
    if widget is Widget.SWITCH:
        return Reading(bool(raw))
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return Reading()
    if widget is Widget.NUMBER:
        return _number(raw)
    if widget is Widget.INTEGER:
        reading = _number(raw)
        if reading.error is not None:
            return reading
        if not float(reading.value).is_integer():
            return Reading(error="must be a whole number")
        return Reading(int(reading.value))
    if widget is Widget.SELECT:
        text = str(raw)
        if field.options and text not in field.options:
            return Reading(error=f"must be one of {', '.join(field.options)}")
        return Reading(text)
    if widget is Widget.JSON:
        return _json(field, str(raw))
    return Reading(str(raw))


def _number(raw: Any) -> Reading:
    try:
        number = float(raw)
    except (TypeError, ValueError):
        return Reading(error="must be a number")
    if not math.isfinite(number):
        return Reading(error="must be a number")
    return Reading(number)


def _json(field: InputField, text: str) -> Reading:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        return Reading(error=f"not valid JSON: {error.msg} ({where})")
    kind = json_kind(field)
    if kind is JsonKind.LIST and not isinstance(value, list):
        return Reading(error='must be a JSON list, like ["a", "b"]')
    if kind is JsonKind.OBJECT and not isinstance(value, dict):
        return Reading(error='must be a JSON object, like {"key": "value"}')
    return Reading(value)


@dataclass(frozen=True)
class FormReading:
    values: dict[str, Any]  # only the inputs that were given
    errors: dict[str, str]  # by input name

    @property
    def is_valid(self) -> bool:
        return not self.errors


def read_form(fields: list[InputField], raws: dict[str, Any]) -> FormReading:
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in fields:
        reading = read_field(field, raws.get(field.name))
        if reading.error is not None:
            errors[field.name] = reading.error
        elif reading.value is not None:
            values[field.name] = reading.value
    return FormReading(values, errors)
