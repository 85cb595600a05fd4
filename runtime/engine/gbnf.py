"""GBNF, llama.cpp's grammar format: why a grammar does not parse, in words.

llama.cpp decides whether a grammar is valid (`engine.llama.grammar` builds
its sampler, and that is the check that counts), but when it refuses one it
logs only "failed to parse grammar" and prints the reason to stderr, where
no request can see it. This module follows the same syntax rules as
llama.cpp's parser (src/llama-grammar.cpp, `llama_grammar_parser`) to say
what is wrong and where, so that a 400 can name the problem. It never
accepts what llama.cpp would refuse on its own say-so: it only explains.
"""

from __future__ import annotations

from runtime.errors import InputError

ROOT = "root"
# llama.cpp's MAX_REPETITION_THRESHOLD: the most repetitions `{m,n}` may ask for.
MAX_REPETITIONS = 2000
_ESCAPES = {"x": 2, "u": 4, "U": 8}
_SIMPLE_ESCAPES = set('trn\\"[]-')
_HEX = set("0123456789abcdefABCDEF")


class GrammarError(InputError):
    """A grammar (GBNF, or one made from a JSON schema) that cannot be used."""

    error_type = "invalid_grammar"

    def __init__(self, message: str, name: str = "grammar") -> None:
        super().__init__(message, name)


def dead_end(answer: str) -> GrammarError:
    """The error of a sequence whose grammar allows no next token at all."""
    tail = f" after {answer[-40:]!r}" if answer else " at the start of the answer"
    return GrammarError(
        f"the grammar allows no next token{tail}: no token of this model can continue it"
    )


class _Problem(Exception):
    def __init__(self, position: int, message: str) -> None:
        super().__init__(message)
        self.position = position


def syntax_problem(text: str) -> str | None:
    """What keeps llama.cpp from parsing `text`, with line and column; None
    when its syntax is fine (llama.cpp may still refuse it: left recursion,
    a `<token>` that is not one token of the model's vocabulary)."""
    parser = _Parser(text)
    try:
        parser.parse()
    except _Problem as problem:
        return f"{where(text, problem.position)}: {problem}"
    return None


def where(text: str, position: int) -> str:
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"line {line}, column {column}"


def _is_word(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "-")


class _Parser:
    """llama.cpp's recursive descent, keeping only what can go wrong."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.defined: set[str] = set()
        self.used: dict[str, int] = {}  # rule name → where it is first used

    def at(self, pos: int) -> str:
        return self.text[pos] if pos < len(self.text) else ""

    def parse(self) -> None:
        pos = self.space(0, newline_ok=True)
        while pos < len(self.text):
            pos = self.rule(pos)
        for name, position in self.used.items():
            if name not in self.defined:
                raise _Problem(position, f"undefined rule '{name}'")
        if ROOT not in self.defined:
            raise _Problem(len(self.text), f"no '{ROOT}' rule (generation starts from it)")

    def space(self, pos: int, *, newline_ok: bool) -> int:
        while (char := self.at(pos)) and (char in " \t#" or (newline_ok and char in "\r\n")):
            if char == "#":
                while self.at(pos) and self.at(pos) not in "\r\n":
                    pos += 1
            else:
                pos += 1
        return pos

    def name(self, pos: int) -> int:
        end = pos
        while _is_word(self.at(end)):
            end += 1
        if end == pos:
            raise _Problem(pos, f"expecting a rule name, found {self.found(pos)}")
        return end

    def integer(self, pos: int) -> int:
        end = pos
        while self.at(end).isascii() and self.at(end).isdigit():
            end += 1
        if end == pos:
            raise _Problem(pos, f"expecting a number, found {self.found(pos)}")
        return end

    def found(self, pos: int) -> str:
        return repr(self.text[pos : pos + 12]) if pos < len(self.text) else "the end"

    def rule(self, pos: int) -> int:
        end = self.name(pos)
        self.defined.add(self.text[pos:end])
        pos = self.space(end, newline_ok=False)
        if not self.text.startswith("::=", pos):
            raise _Problem(pos, f"expecting '::=' after the rule name, found {self.found(pos)}")
        pos = self.alternates(self.space(pos + 3, newline_ok=True), nested=False)
        if self.at(pos) == "\r":
            pos += 2 if self.at(pos + 1) == "\n" else 1
        elif self.at(pos) == "\n":
            pos += 1
        elif pos < len(self.text):
            raise _Problem(pos, f"expecting the end of the rule, found {self.found(pos)}")
        return self.space(pos, newline_ok=True)

    def alternates(self, pos: int, *, nested: bool) -> int:
        pos = self.sequence(pos, nested=nested)
        while self.at(pos) == "|":
            pos = self.sequence(self.space(pos + 1, newline_ok=True), nested=nested)
        return pos

    def char(self, pos: int) -> int:
        """One character of a literal or a class (an escape included)."""
        if self.at(pos) == "\\":
            kind = self.at(pos + 1)
            if kind in _ESCAPES:
                digits = self.text[pos + 2 : pos + 2 + _ESCAPES[kind]]
                if len(digits) < _ESCAPES[kind] or not set(digits) <= _HEX:
                    raise _Problem(pos, f"\\{kind} needs {_ESCAPES[kind]} hex digits")
                return pos + 2 + _ESCAPES[kind]
            if kind and kind in _SIMPLE_ESCAPES:
                return pos + 2
            raise _Problem(pos, f"unknown escape \\{kind}")
        if pos >= len(self.text):
            raise _Problem(pos, "unexpected end of the grammar")
        return pos + 1

    def sequence(self, pos: int, *, nested: bool) -> int:
        has_item = False  # something a repetition operator may apply to
        while pos < len(self.text):
            char, start = self.text[pos], pos
            if char == '"':
                pos += 1
                while self.at(pos) != '"':
                    if pos >= len(self.text):
                        raise _Problem(start, "unterminated string literal")
                    pos = self.char(pos)
                has_item = pos > start + 1
                pos += 1
            elif char == "[":
                pos += 2 if self.at(pos + 1) == "^" else 1
                while self.at(pos) != "]":
                    if pos >= len(self.text):
                        raise _Problem(start, "unterminated character class")
                    pos = self.char(pos)
                    if self.at(pos) == "-" and self.at(pos + 1) != "]":
                        pos = self.char(pos + 1)
                has_item = True
                pos += 1
            elif char in "<!":
                pos = self.token(pos + 1 if char == "!" else pos)
                has_item = True
            elif _is_word(char):
                end = self.name(pos)
                self.used.setdefault(self.text[pos:end], pos)
                has_item, pos = True, end
            elif char == "(":
                pos = self.alternates(self.space(pos + 1, newline_ok=True), nested=True)
                if self.at(pos) != ")":
                    opened = where(self.text, start)
                    raise _Problem(pos, f"expecting ')' to close the group at {opened}")
                has_item, pos = True, pos + 1
            elif char == ".":
                has_item, pos = True, pos + 1
            elif char in "*+?{":
                if not has_item:
                    raise _Problem(pos, f"'{char}' has nothing before it to repeat")
                pos = self.repetition(pos, nested) if char == "{" else pos + 1
            else:
                break
            pos = self.space(pos, newline_ok=nested)
        return pos

    def token(self, pos: int) -> int:
        """`<[id]>` or `<piece>` (whether the piece is one token, llama.cpp says)."""
        if self.at(pos) != "<":
            raise _Problem(pos, f"expecting '<' after '!', found {self.found(pos)}")
        if self.at(pos + 1) == "[":
            end = self.integer(pos + 2)
            if self.text[end : end + 2] != "]>":
                raise _Problem(end, f"expecting ']>' to end the token id, found {self.found(end)}")
            return end + 2
        end = self.text.find(">", pos)
        if end == -1:
            raise _Problem(pos, "expecting '>' to end the token")
        return end + 1

    def repetition(self, pos: int, nested: bool) -> int:
        """`{m}`, `{m,}` or `{m,n}` (at `{`)."""
        pos = self.space(pos + 1, newline_ok=nested)
        end = self.integer(pos)
        low = int(self.text[pos:end])
        pos = self.space(end, newline_ok=nested)
        if self.at(pos) == ",":
            pos = self.space(pos + 1, newline_ok=nested)
            if self.at(pos).isascii() and self.at(pos).isdigit():
                pos = self.space(self.integer(pos), newline_ok=nested)
        if self.at(pos) != "}":
            raise _Problem(pos, f"expecting '}}' to end the repetition, found {self.found(pos)}")
        if low > MAX_REPETITIONS:
            limit = f"more than llama.cpp allows ({MAX_REPETITIONS})"
            raise _Problem(pos, f"{low} repetitions are {limit}")
        return pos + 1
