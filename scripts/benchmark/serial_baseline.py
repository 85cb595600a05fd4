"""The serial baseline: `llama_cpp.Llama.create_completion`, one request at a
time behind a lock (what llama-cpp-python's own server does), with N client
threads queued on it. Same model, context, threads, prompt tokens and greedy
sampling as the other systems; it stops at the end-of-generation token like
our engine does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import llama_cpp

from scripts.benchmark.ceiling import with_bos
from scripts.benchmark.stats import RunRecord


class SerialBaseline:
    def __init__(self, path: str, n_ctx: int, n_batch: int, n_threads: int) -> None:
        self.llama = llama_cpp.Llama(
            model_path=path,
            n_ctx=n_ctx,
            n_batch=n_batch,
            n_threads=n_threads,
            n_gpu_layers=0,
            verbose=False,
        )
        self.lock = threading.Lock()

    def encode(self, text: str) -> list[int]:
        llama = self.llama
        tokens = llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        adds_bos = bool(llama_cpp.llama_vocab_get_add_bos(llama._model.vocab))
        return with_bos(tokens, llama.token_bos(), adds_bos)

    def complete(self, prompt: Sequence[int], max_tokens: int) -> tuple[float | None, int, str]:
        """One streamed greedy completion under the lock: (time of the first
        text, completion tokens, finish reason)."""
        with self.lock:
            first: float | None = None
            finish = "length"
            for chunk in self.llama.create_completion(
                list(prompt), max_tokens=max_tokens, temperature=0.0, stream=True
            ):
                choice = chunk["choices"][0]
                if first is None and choice["text"]:
                    first = time.perf_counter()
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
            # The context holds the prompt and every completion token but the
            # last one (sampled, never evaluated) or the end-of-generation token.
            evaluated = self.llama.n_tokens - len(prompt)
            completion = evaluated + 1 if finish == "length" else evaluated
            return first, completion, finish

    def run(self, prompts: list[list[int]], max_tokens: int) -> RunRecord:
        """One client thread per prompt, all started together, queued on the lock."""
        clients = len(prompts)
        results: list[tuple[float | None, int, str]] = [(None, 0, "")] * clients

        def client(i: int) -> None:
            results[i] = self.complete(prompts[i], max_tokens)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        finished = time.perf_counter()
        return RunRecord(
            clients=clients,
            wall_s=finished - started,
            ttft_s=[(first or finished) - started for first, _, _ in results],
            completion_tokens=[tokens for _, tokens, _ in results],
            finish_reasons=[reason for _, _, reason in results],
        )

    def close(self) -> None:
        self.llama.close()
