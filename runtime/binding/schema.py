"""The input schema a workflow implies: what the Web UI form shows and what
`GET …/schema` returns, inferred from the `${input.*}` bindings it uses."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from runtime.binding.lookup import normalize_name
from runtime.binding.template import Binding


@dataclass(frozen=True)
class InputField:
    name: str  # the first path segment under `input`, as first spelled
    type: str = "text"  # the cast's name ("number", "select", "number[]"...)
    options: list[str] | None = None  # the choices of a `select`
    default: Any = None  # the default's value when it holds no bindings
    required: bool = True  # some binding of this name has nothing to fall back on


@dataclass(frozen=True)
class Omittable:
    """A binding whose place means something when its value is unset, so it
    does not make its input required: the whole content of a system message,
    which is then left out (see `runtime.workflow.inputs`)."""

    binding: Binding


@dataclass
class _Draft:
    """A field being assembled from every binding that names it."""

    name: str
    type: str | None = None
    options: list[str] | None = None
    default: Any = None
    has_default: bool = False
    required: bool = False
    nested: bool = False  # some binding reaches inside it: `input.x.y`, `input.x[0]`

    def add(self, binding: Binding, optional: bool) -> None:
        if not optional:
            self.required = True
        if len(binding.path) > 1:
            # A cast or default on `input.x.y` is about y, not about x.
            self.nested = True
            return
        if self.type is None and binding.type is not None:
            self.type = binding.type.name + ("[]" if binding.type.is_list else "")
            if binding.type.name == "select":
                self.options = list(binding.type.choices)
        if not self.has_default and binding.default is not None and binding.default.is_constant:
            self.default = binding.default_value
            self.has_default = True

    def build(self) -> InputField:
        # A value the workflow indexes into is structured: ask for JSON.
        type_ = self.type or ("json" if self.nested else "text")
        return InputField(self.name, type_, self.options, self.default, self.required)


def infer_input_fields(uses: Iterable[Binding | Omittable]) -> list[InputField]:
    """One field per distinct input name, in first-seen order.

    An input is optional when every binding that reads it copes without it:
    it has a default, it sits inside another binding's default, or its place
    is `Omittable`. One binding with nothing to fall back on makes it required,
    since that binding would otherwise render null where a value is needed.
    """
    uses = list(uses)
    bindings = [use.binding if isinstance(use, Omittable) else use for use in uses]
    # A binding inside another's default is read only when that other value is
    # missing (`${input.template | "About ${input.topic}"}`), so it is optional.
    in_defaults = {
        id(inner)
        for binding in bindings
        if binding.default is not None
        for inner in binding.default.bindings()
    }
    drafts: dict[str, _Draft] = {}
    for use, binding in zip(uses, bindings, strict=True):
        if binding.key != "input" or not binding.path or not isinstance(binding.path[0], str):
            continue
        name = binding.path[0]
        draft = drafts.setdefault(normalize_name(name), _Draft(name))
        optional = binding.has_default or id(binding) in in_defaults or isinstance(use, Omittable)
        draft.add(binding, optional=optional)
    return [draft.build() for draft in drafts.values()]
