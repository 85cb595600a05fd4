"""When a greedy answer under load differs from the same prompt's answer
alone, was it a near-tie?

llama.cpp does not promise bit-identical logits across batch sizes (its own
server documents it for `cache_prompt`): a prompt whose prefix was evaluated
in another request's batch (the prefix cache), or decoded beside other
sequences, gets logits that differ in the last bits. Where the model's two
best tokens are almost equal, greedy decoding can then take the other one,
and the rest of the answer follows from it. So, as vLLM's own tests do, an
answer that parts from the reference is accepted only where the two tokens
taken there are within `TIE_LOGITS` of each other: this module replays the
prompt in-process on the same model and reads the logits at that point. A
mixed-up KV cache or another request's tokens do not part at a near-tie.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Two tokens whose logits differ by less than this are a tie for this purpose.
# The differences are not only in the last bits: activations are quantized to
# 8 bits per block before each matmul, so a last-bit change can move a value
# by a whole quantization step. Over 1,000 soak requests the tokens that
# swapped were up to 0.34 logits apart (1.0 leaves room for other CPUs and
# kernels). Another request's token or a corrupt KV cache is typically
# several logits behind, or not among the top 40 at all.
TIE_LOGITS = 1.0
TOP_K = 40  # tokens considered at each step


@dataclass(frozen=True)
class Divergence:
    at_byte: int  # where the two answers part, in UTF-8 bytes
    gap: float  # logit gap between the tokens they took there (inf: not both plausible)

    @property
    def is_tie(self) -> bool:
        return self.gap <= TIE_LOGITS


class TieJudge:
    """The model loaded once in this process (one sequence, flash attention
    as the engines use), to replay prompts and read logits."""

    def __init__(self, model_path: str, n_ctx: int) -> None:
        import llama_cpp

        from runtime.engine.llama.chat_template import ChatTemplate
        from runtime.engine.llama.vocab import Vocabulary

        self._llama = llama_cpp.Llama(
            model_path=model_path, n_ctx=n_ctx, flash_attn=True, verbose=False
        )
        self._vocab = Vocabulary(self._llama.model)
        self._chat = ChatTemplate(
            self._vocab.chat_template,
            bos_token=self._vocab.special.bos_text,
            eos_token=self._vocab.special.eos_text,
        )

    def close(self) -> None:
        self._llama.close()

    def _prompt_tokens(self, prompt: str) -> list[int]:
        from runtime.engine.llama.chat_template import prompt_text
        from runtime.engine.types import ChatMessage, GenerationRequest

        request = GenerationRequest(messages=[ChatMessage("user", prompt)])
        return self._vocab.encode(prompt_text(self._chat, request))

    def _logits(self) -> np.ndarray:
        import llama_cpp

        pointer = llama_cpp.llama_get_logits_ith(self._llama.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self._vocab.n_vocab,)).copy()

    def _taken(self, logits: np.ndarray, top: list[int], rest: bytes, stopped: bool) -> int | None:
        """The most likely of the `top` tokens that continues `rest` (an
        end-of-generation token when the answer is over and it stopped)."""
        for token in top:
            if not rest:
                if stopped and self._vocab.is_eog(token):
                    return token
                continue
            piece = self._vocab.token_bytes(token)
            if piece and rest.startswith(piece):
                return token
        return None

    def divergence(
        self, prompt: str, a: str, a_stopped: bool, b: str, b_stopped: bool
    ) -> Divergence:
        """Walk both answers token by token from the prompt until they part,
        as far as both go; `*_stopped`: the answer ended with an
        end-of-generation token (else it was cut: by its length, or cancelled).
        A gap of 0 when neither parts from the other."""
        llama = self._llama
        llama.reset()
        llama.eval(self._prompt_tokens(prompt))
        rest_a, rest_b = a.encode(), b.encode()
        done = 0
        while (rest_a or a_stopped) and (rest_b or b_stopped) and (rest_a or rest_b):
            logits = self._logits()
            top = [int(t) for t in np.argsort(-logits)[:TOP_K]]
            token_a = self._taken(logits, top, rest_a, a_stopped)
            token_b = self._taken(logits, top, rest_b, b_stopped)
            if token_a is None or token_b is None:
                return Divergence(done, math.inf)
            if token_a != token_b:
                return Divergence(done, abs(float(logits[token_a] - logits[token_b])))
            piece = self._vocab.token_bytes(token_a)
            if not piece or llama.n_tokens >= llama.n_ctx():
                break
            rest_a, rest_b = rest_a[len(piece) :], rest_b[len(piece) :]
            done += len(piece)
            llama.eval([token_a])
        return Divergence(done, 0.0)


class Referee:
    """Judges answers against the references of a run's prompts; loads the
    model only if some answer differs, and judges each distinct pair once."""

    def __init__(self, model_path: str, n_ctx: int, prompts: list[str]) -> None:
        self._model_path, self._n_ctx, self._prompts = model_path, n_ctx, prompts
        self._judge: TieJudge | None = None
        self._seen: dict[tuple[int, str, bool, str, bool], Divergence] = {}

    def divergence(
        self, prompt: int, a: str, a_stopped: bool, b: str, b_stopped: bool
    ) -> Divergence:
        key = (prompt, a, a_stopped, b, b_stopped)
        if key not in self._seen:
            if self._judge is None:
                self._judge = TieJudge(self._model_path, self._n_ctx)
            self._seen[key] = self._judge.divergence(
                self._prompts[prompt], a, a_stopped, b, b_stopped
            )
        return self._seen[key]

    def close(self) -> None:
        if self._judge is not None:
            self._judge.close()
