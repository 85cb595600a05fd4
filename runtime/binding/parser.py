"""The parser: one string of a compose file into a `Template`.

    ${ KEY [.PATH] [ as TYPE ] [ | DEFAULT ] }

A hand-written recursive descent over the original text, so that a binding
nested in a default or a `[${...}]` index is parsed in place and every error
carries its offset in the string the user wrote.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any, NoReturn

from runtime.binding.casts import TYPE_NAMES, TYPES_WITH_OPTIONS, BindingType, CastError
from runtime.binding.template import Binding, PathPart, Template
from runtime.errors import BindingSyntaxError

KEYS = ("input", "output", "result", "reasoning", "jobs", "env", "index", "item", "context")

_WHITESPACE = " \t\r\n"
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME = re.compile(r"[\w-]+")
_INDEX = re.compile(r"-?\d+")
_AS = re.compile(r"as(?![\w-])")
# Real files nest two or three deep (`${input.a | "About ${input.topic}"}`);
# the limit keeps the recursive parser and renderer far from Python's
# recursion limit, so 10,000 nested `${` are a syntax error, not a crash.
MAX_NESTING = 32
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "$": "$"}

Part = str | Binding


@lru_cache(maxsize=4096)
def compile_template(text: str) -> Template:
    """Parse a string once; the same string always yields the same Template."""
    return Template(text, _Parser(text).parts())


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0  # bindings open around the current position

    # -- text around and inside bindings ---------------------------------

    def parts(self, quote: str | None = None, until_brace: bool = False) -> tuple[Part, ...]:
        """Literal text and bindings up to the end of the text, or the closing
        `quote`, or (with `until_brace`) a `}`; the caller checks which."""
        text = self.text
        parts: list[Part] = []
        literal: list[str] = []
        while self.pos < len(text):
            char = text[self.pos]
            if text.startswith("$${", self.pos):
                literal.append("${")
                self.pos += 3
            elif text.startswith("${", self.pos):
                if literal:
                    parts.append("".join(literal))
                    literal = []
                parts.append(self.binding())
            elif char == quote:
                break
            elif quote and char == "\\":
                literal.append(self.escape())
            elif until_brace and char == "}":
                break
            else:
                literal.append(char)
                self.pos += 1
        if literal:
            parts.append("".join(literal))
        return tuple(parts)

    def escape(self) -> str:
        following = self.text[self.pos + 1 : self.pos + 2]
        self.pos += 2
        # An unknown escape is kept as written: Windows paths survive.
        return _ESCAPES.get(following, "\\" + following)

    def quoted(self) -> str:
        """A quoted path key: literal text only, with backslash escapes."""
        quote, start = self.text[self.pos], self.pos
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.text) and self.text[self.pos] != quote:
            if self.text[self.pos] == "\\":
                chars.append(self.escape())
            else:
                chars.append(self.text[self.pos])
                self.pos += 1
        if self.pos >= len(self.text):
            self.fail("unterminated quoted key", start)
        self.pos += 1
        return "".join(chars)

    # -- one binding -----------------------------------------------------

    def binding(self) -> Binding:
        if self.depth == MAX_NESTING:
            self.fail(f"bindings nested more than {MAX_NESTING} deep", self.pos)
        self.depth += 1
        try:
            return self._binding()
        finally:
            self.depth -= 1

    def _binding(self) -> Binding:
        start = self.pos
        self.pos += 2
        self.skip_whitespace()
        key_at = self.pos
        key = self.match(_KEY)
        if key is None:
            self.need(start)
            self.fail("expected a key after '${'", key_at)
        if key not in KEYS:
            self.fail(f"unknown key {key!r}; expected one of {', '.join(KEYS)}", key_at)
        path = self.path(start)
        type_ = self.type(start)
        default, default_value = self.default(start, type_)
        self.skip_whitespace()
        self.need(start)
        if self.text[self.pos] != "}":
            if default is not None:
                expected = "'}' after the default"
            elif type_ is not None:
                expected = "'| DEFAULT' or '}'"
            else:
                expected = "'as TYPE', '| DEFAULT' or '}'"
            self.fail(f"unexpected {self.text[self.pos]!r}; expected {expected}", self.pos)
        self.pos += 1
        return Binding(key, path, type_, default, self.text[start : self.pos], default_value)

    def path(self, start: int) -> tuple[PathPart, ...]:
        parts: list[PathPart] = []
        while True:
            mark = self.pos
            self.skip_whitespace()
            if self.text.startswith(".", self.pos):
                self.pos += 1
                name = self.match(_NAME)
                if name is None:
                    self.need(start)
                    self.fail("expected a name after '.'", self.pos)
                parts.append(name)
            elif self.text.startswith("[", self.pos):
                parts.append(self.index(start))
            else:
                self.pos = mark
                return tuple(parts)

    def index(self, start: int) -> PathPart:
        self.pos += 1
        self.skip_whitespace()
        self.need(start)
        part: PathPart
        if self.text.startswith("${", self.pos):
            nested_start = self.pos
            nested = self.binding()
            part = Template(self.text[nested_start : self.pos], (nested,))
        elif self.text[self.pos] in "\"'":
            part = self.quoted()
        elif (number := self.match(_INDEX)) is not None:
            part = int(number)
        else:
            self.fail("expected an index, a quoted key or '${...}' after '['", self.pos)
        self.skip_whitespace()
        self.need(start)
        if self.text[self.pos] != "]":
            self.fail(f"unexpected {self.text[self.pos]!r}; expected ']'", self.pos)
        self.pos += 1
        return part

    def type(self, start: int) -> BindingType | None:
        mark = self.pos
        self.skip_whitespace()
        if self.match(_AS) is None:
            self.pos = mark
            return None
        self.skip_whitespace()
        name_at = self.pos
        name = self.match(_KEY)
        if name is None:
            self.need(start)
            self.fail("expected a type after 'as'", self.pos)
        if name not in TYPE_NAMES:
            self.fail(f"unknown type {name!r}; expected one of {', '.join(TYPE_NAMES)}", name_at)
        options = None
        if self.text.startswith("/", self.pos):
            if name not in TYPES_WITH_OPTIONS:
                self.fail(f"the type {name!r} takes no options", self.pos)
            self.pos += 1
            options_at = self.pos
            while self.pos < len(self.text) and self.text[self.pos] not in "|}[":
                self.pos += 1
            options = self.text[options_at : self.pos].strip()
            if not options:
                self.need(start)
                self.fail(f"expected options after '{name}/'", options_at)
        elif name == "select":
            self.fail("the type 'select' needs its options, as in 'select/a,b'", self.pos)
        is_list = self.text.startswith("[", self.pos)
        if is_list:
            if not self.text.startswith("[]", self.pos):
                self.fail("expected '[]' after the type", self.pos)
            self.pos += 2
        return BindingType(name, options, is_list)

    def default(self, start: int, type_: BindingType | None) -> tuple[Template | None, Any]:
        mark = self.pos
        self.skip_whitespace()
        if not self.text.startswith("|", self.pos):
            self.pos = mark
            return None, None
        self.pos += 1
        self.skip_whitespace()
        at = self.pos
        quote = self.text[at] if self.pos < len(self.text) else ""
        if quote in ("'", '"'):
            self.pos += 1
            parts = self.parts(quote=quote)
            if self.pos >= len(self.text):
                self.fail("unterminated quoted default", at)
            self.pos += 1
            default = Template(self.text[at + 1 : self.pos - 1], parts)
            value: Any = "".join(p for p in parts if isinstance(p, str))
        else:
            parts = _strip(self.parts(until_brace=True))
            self.need(start)
            default = Template(self.text[at : self.pos].strip(), parts)
            value = _scalar("".join(p for p in parts if isinstance(p, str)))
        if not default.is_constant:
            return default, None
        if type_ is not None:
            # A constant default that cannot fit its type could never work:
            # report it when the file is loaded, not on the first run.
            try:
                value = type_.cast(value)
            except CastError as error:
                self.fail(f"the default {error}", at)
        return default, value

    # -- small helpers ---------------------------------------------------

    def match(self, pattern: re.Pattern[str]) -> str | None:
        found = pattern.match(self.text, self.pos)
        if found is None:
            return None
        self.pos = found.end()
        return found.group()

    def skip_whitespace(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
            self.pos += 1

    def need(self, start: int) -> None:
        """Fail when the text ends inside the binding that began at `start`."""
        if self.pos >= len(self.text):
            self.fail("unterminated '${': no closing '}'", start)

    def fail(self, message: str, offset: int) -> NoReturn:
        raise BindingSyntaxError(message, self.text, offset)


def _strip(parts: tuple[Part, ...]) -> tuple[Part, ...]:
    """Trim the whitespace around an unquoted default, keeping its bindings."""
    items = list(parts)
    if items and isinstance(items[0], str):
        items[0] = items[0].lstrip()
    if items and isinstance(items[-1], str):
        items[-1] = items[-1].rstrip()
    return tuple(item for item in items if item != "")


def _scalar(text: str) -> Any:
    """An unquoted default reads like a YAML scalar: `0.7`, `5`, `true`, `null`."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    # json.loads accepts NaN and Infinity, which no YAML author means.
    return text if isinstance(value, float) and not math.isfinite(value) else value
