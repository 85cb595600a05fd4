"""The input form of one workflow, generated from its inferred input schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui
from nicegui.elements.mixins.validation_element import ValidationElement
from nicegui.elements.mixins.value_element import ValueElement

from runtime.binding import InputField
from runtime.webui.fields import (
    FormReading,
    Widget,
    hint,
    initial_value,
    read_field,
    read_form,
    widget_for,
)


class InputForm:
    """One widget per input, marked `input-<name>` for tests. Create it inside
    its container; `on_change` is called whenever a value changes."""

    def __init__(self, fields: list[InputField], on_change: Callable[[], None]) -> None:
        self.fields = fields
        self.widgets: dict[str, ValueElement[Any]] = {}
        with ui.column().classes("w-full gap-2") as self.root:
            if not fields:
                ui.label("This workflow takes no input.").classes("text-grey-7")
            for field in fields:
                widget = _build(field)
                widget.mark(f"input-{field.name}")
                widget.on_value_change(lambda _: on_change())
                self.widgets[field.name] = widget

    def read(self) -> FormReading:
        return read_form(self.fields, {name: w.value for name, w in self.widgets.items()})

    def show_errors(self, errors: dict[str, str]) -> None:
        """Put each message next to its field (and clear the others)."""
        for name, widget in self.widgets.items():
            if isinstance(widget, ValidationElement):
                widget.error = errors.get(name)

    def field_named(self, name: str) -> str | None:
        """The form's own spelling of an input name (`-` and `_` are the same)."""
        wanted = name.replace("-", "_")
        return next((n for n in self.widgets if n.replace("-", "_") == wanted), None)


def _label(field: InputField) -> str:
    return f"{field.name} *" if field.required else field.name


def _build(field: InputField) -> ValueElement[Any]:
    widget = widget_for(field)
    value = initial_value(field)

    def check(raw: Any) -> str | None:
        # Checked as the user types: a required field left empty, JSON that
        # does not parse, an integer with a fraction.
        return read_field(field, raw).error

    if widget is Widget.SWITCH:
        return ui.switch(_label(field), value=value)
    if widget is Widget.SELECT:
        return (
            ui.select(field.options or [], label=_label(field), value=value, validation=check)
            .props(f'outlined dense hint="{hint(field)}"')
            .props("" if field.required else "clearable")
            .classes("w-full")
        )
    if widget in (Widget.NUMBER, Widget.INTEGER):
        step = 1 if widget is Widget.INTEGER else None
        number = ui.number(_label(field), value=value, step=step, validation=check)
        return number.props(f'outlined dense hint="{hint(field)}"').classes("w-full")
    if widget is Widget.LINE:
        return (
            ui.input(_label(field), value=value, validation=check)
            .props(f'outlined dense hint="{hint(field)}"')
            .classes("w-full")
        )
    if widget is Widget.JSON:
        return (
            ui.textarea(_label(field), value=value, validation=check)
            .props(f'outlined dense autogrow hint="{hint(field)}" spellcheck=false')
            .classes("w-full font-mono")
        )
    return (
        ui.textarea(_label(field), value=value, validation=check)
        .props(f'outlined dense autogrow hint="{hint(field)}"')
        .classes("w-full")
    )
