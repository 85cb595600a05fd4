"""llama.cpp's grammar sampler for one sequence, and JSON schema → GBNF.

A grammar never sits in a sequence's sampler chain: `llama_sampler_sample`
accepts whatever the chain picked, and llama.cpp's grammar aborts the
process when it is made to accept a token it does not allow (an end of
generation before the grammar is complete is a GGML_ABORT; any other token
is a C++ exception through ctypes). That happens when no token is allowed
at all (a grammar that dead-ends). So the constrained path is ours, as
llama.cpp's own common sampler does it: sample with the chain, check that
one token against the grammar, and only when it is refused apply the
grammar to the whole vocabulary and sample again; then accept the token in
both. Checking one token first is what makes a grammar cheap: the
full-vocabulary pass runs only where the model wanted something else.
"""

from __future__ import annotations

import ctypes
import math

import llama_cpp
import llama_cpp.llama_grammar
import numpy as np

from runtime.engine.gbnf import ROOT, GrammarError, syntax_problem
from runtime.engine.llama.log import listen_to_llama_log

# Any JSON object (`response_format: {"type": "json_object"}`), as llama.cpp ships it.
JSON_OBJECT_GBNF: str = llama_cpp.llama_grammar.JSON_GBNF

_GGML_LOG_ERROR = 4
# llama_token_data as numpy lays it out: {int32 id; float logit; float p}.
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


def json_schema_gbnf(schema_json: str) -> str:
    """llama.cpp's conversion (see `engine.json_schema.schema_grammar`, which checks first)."""
    grammar = llama_cpp.llama_grammar.json_schema_to_gbnf(schema_json)
    for rule, strict in _JSON_STRICT_RULES:
        grammar = "\n".join(strict if line == rule else line for line in grammar.split("\n"))
    return grammar


# The converter's rule for a character of a string allows raw control
# characters, which JSON forbids (`json.loads` refuses a raw newline inside a
# string), and so does its `.` of a pattern; llama.cpp's newer converter
# excludes them, and so do these.
_JSON_STRICT_RULES = [
    (
        "char ::= " + llama_cpp.llama_grammar.PRIMITIVE_RULES["char"].content,
        'char ::= [^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})',
    ),
    ("dot ::= " + llama_cpp.llama_grammar.DOT, "dot ::= [^\\x00-\\x1F\\x7F]"),
]


class DeadEnd(Exception):
    """The grammar allows no token at all here."""


class Grammar:
    """An owned llama.cpp grammar sampler (`close()` frees it). Built on the
    intake thread, used by the worker thread only."""

    def __init__(self, vocab: llama_cpp.llama_vocab_p, text: str) -> None:
        errors: list[str] = []

        def listen(level: int, message: str) -> None:
            if level == _GGML_LOG_ERROR and message.strip():
                errors.append(message.strip())

        with listen_to_llama_log(listen):
            sampler = llama_cpp.llama_sampler_init_grammar(
                vocab, text.encode("utf-8"), ROOT.encode()
            )
        if not sampler:
            raise GrammarError(f"invalid grammar: {_why(text, errors)}")
        self._sampler: llama_cpp.llama_sampler_p | None = sampler
        self._one = (llama_cpp.llama_token_data * 1)()
        self._one_array = llama_cpp.llama_token_data_array(
            data=self._one, size=1, selected=-1, sorted=False
        )

    def allows(self, token: int) -> bool:
        """Whether the grammar lets `token` come next."""
        self._one[0] = llama_cpp.llama_token_data(token, 0.0, 0.0)
        self._one_array.size, self._one_array.selected = 1, -1
        llama_cpp.llama_sampler_apply(self._live(), ctypes.byref(self._one_array))
        return not math.isinf(self._one[0].logit)

    def restrict(self, candidates: Candidates) -> None:
        """Rule out every token the grammar does not allow next; `DeadEnd` when that is all."""
        llama_cpp.llama_sampler_apply(self._live(), ctypes.byref(candidates.array))
        if not candidates.any_allowed():
            raise DeadEnd

    def accept(self, token: int) -> None:
        """`token` comes next (it must be one the grammar allows)."""
        llama_cpp.llama_sampler_accept(self._live(), token)

    def close(self) -> None:
        if self._sampler is not None:
            llama_cpp.llama_sampler_free(self._sampler)
            self._sampler = None

    def _live(self) -> llama_cpp.llama_sampler_p:
        if self._sampler is None:
            raise RuntimeError("grammar is closed")
        return self._sampler


class Candidates:
    """One row of logits as the llama_token_data_array a sampler works on,
    in a numpy buffer allocated once per sequence."""

    def __init__(self, n_vocab: int) -> None:
        self.n_vocab = n_vocab
        self._data = np.zeros(n_vocab, dtype=_TOKEN_DATA)
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._pointer = self._data.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data))
        self.array = llama_cpp.llama_token_data_array(
            data=self._pointer, size=n_vocab, selected=-1, sorted=False
        )

    def fill(self, ctx: llama_cpp.llama_context_p, idx: int) -> None:
        """The logits of output `idx` of the last decode, every token a candidate."""
        logits = llama_cpp.llama_get_logits_ith(ctx, idx)
        self._data["id"] = self._ids
        self._data["logit"] = np.ctypeslib.as_array(logits, shape=(self.n_vocab,))
        self._data["p"] = 0.0
        array = self.array
        array.data, array.size = self._pointer, self.n_vocab
        array.selected, array.sorted = -1, False

    def any_allowed(self) -> bool:
        return bool(np.isfinite(self._data["logit"][: self.array.size]).any())

    @property
    def selected(self) -> int:
        """The token the samplers picked."""
        index = self.array.selected
        if not 0 <= index < self.array.size:
            raise RuntimeError(f"the sampler chain selected no token ({index})")
        return int(self.array.data[index].id)

    def best_allowed(self) -> int:
        """The most likely token left (when a sampler picked a ruled-out one)."""
        size = self.array.size
        view = np.ctypeslib.as_array(
            ctypes.cast(self.array.data, ctypes.POINTER(ctypes.c_byte)), shape=(size * 12,)
        ).view(_TOKEN_DATA)
        return int(view["id"][int(np.argmax(view["logit"]))])

    def selected_is_allowed(self) -> bool:
        index = self.array.selected
        return 0 <= index < self.array.size and not math.isinf(self.array.data[index].logit)


def _why(text: str, errors: list[str]) -> str:
    """llama.cpp's reason for refusing `text`, in words (see `engine.gbnf`)."""
    problem = syntax_problem(text)
    if problem is not None:
        return problem
    for line in errors:
        if "left recursion" in line:
            return "a rule can start with itself (left recursion), which llama.cpp does not support"
        if "does not contain" in line:
            return f"no '{ROOT}' rule (generation starts from it)"
    if any(line.startswith("failed to parse") for line in errors):
        # Syntax our check passes: a `<piece>` that is not one token of this model.
        return "llama.cpp cannot parse it (is every <token> a single token of this model?)"
    return "; ".join(errors) or "llama.cpp refused it"
