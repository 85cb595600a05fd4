"""The binding language: `${KEY.PATH as TYPE | DEFAULT}` in compose-file strings.

Compile a string once with `compile_template`, render it against a scope
(`{"input": ..., "jobs": {...}, "index": 0, ...}`), or walk a whole YAML value
with `render` / `iter_bindings`. `infer_input_fields` turns the `input`
bindings into the schema the Web UI and `GET …/schema` show.
"""

from runtime.binding.casts import BindingType, CastError
from runtime.binding.parser import KEYS, compile_template
from runtime.binding.schema import InputField, Omittable, infer_input_fields
from runtime.binding.template import Binding, PathPart, Template
from runtime.binding.walk import has_bindings, iter_bindings, render

__all__ = [
    "KEYS",
    "Binding",
    "BindingType",
    "CastError",
    "InputField",
    "Omittable",
    "PathPart",
    "Template",
    "compile_template",
    "has_bindings",
    "infer_input_fields",
    "iter_bindings",
    "render",
]
