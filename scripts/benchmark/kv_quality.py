"""`scripts/bench --kv-quality`: what a quantized KV cache costs in quality,
measured as llama.cpp computes it, against the F16 cache on the same prompts.

For each prompt, the F16 cache decodes greedily `steps` tokens; every other
cache type is then fed the same prompt and the same tokens (teacher forcing),
so each step compares the two caches' next-token distributions on identical
input. Reported per type: how often the most likely token is the same, the
KL divergence of the distributions (mean and worst step), the largest logit
difference, and how many tokens a free-running greedy decode with that cache
keeps identical to F16's.

The prompts are the benchmark's long system prompt (about `context` tokens:
a quantized cache's error adds up over the positions attention reads) with
a few questions after it. Plain llama.cpp calls, one sequence at a time: this
measures the cache, not our engine.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.engine.placement import common_prefix
from scripts.benchmark import prompts

TYPES = ("f16", "q8_0", "q4_0")


def measure(model_path: str, context: int, steps: int, n_threads: int) -> dict[str, Any]:
    import llama_cpp

    from runtime.engine.llama.log import route_llama_logs

    route_llama_logs()
    llama_cpp.llama_backend_init()
    model = llama_cpp.llama_model_load_from_file(
        model_path.encode(), llama_cpp.llama_model_default_params()
    )
    vocab = llama_cpp.llama_model_get_vocab(model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    system = prompts.system_prompt_for(model_path, context)
    texts = [system + question for question in prompts.QUESTIONS] + [
        prompts.rounds([1], 1, start=7)[0][0]
    ]
    inputs = [_tokenize(vocab, text) for text in texts]
    results: dict[str, Any] = {"prompt_tokens": [len(t) for t in inputs], "types": {}}
    reference: list[tuple[list[int], np.ndarray]] = []
    for kv_type in TYPES:
        ctx = _context(
            llama_cpp, model, kv_type, max(len(t) for t in inputs) + steps + 8, n_threads
        )
        top1 = kl_sum = 0.0
        kl_max = logit_max = 0.0
        same_prefix: list[int] = []
        count = 0
        for index, tokens in enumerate(inputs):
            if kv_type == TYPES[0]:
                forced, logits = _run(llama_cpp, ctx, tokens, steps, n_vocab, forced=None)
                reference.append((forced, logits))
                continue
            forced, expected = reference[index]
            _, logits = _run(llama_cpp, ctx, tokens, steps, n_vocab, forced=forced)
            greedy, _ = _run(llama_cpp, ctx, tokens, steps, n_vocab, forced=None)
            same_prefix.append(common_prefix(greedy, forced, steps))
            top1 += float((logits.argmax(1) == expected.argmax(1)).sum())
            kl = _kl(expected, logits)
            kl_sum += float(kl.sum())
            kl_max = max(kl_max, float(kl.max()))
            logit_max = max(logit_max, float(np.abs(logits - expected).max()))
            count += len(forced)
        llama_cpp.llama_free(ctx)
        if kv_type != TYPES[0]:
            results["types"][kv_type] = {
                "top1_agreement": top1 / count,
                "kl_mean": kl_sum / count,
                "kl_max": kl_max,
                "max_logit_diff": logit_max,
                "greedy_same_tokens": same_prefix,
                "steps": steps,
            }
    llama_cpp.llama_model_free(model)
    return results


def markdown(results: dict[str, Any], model_name: str) -> str:
    lines = [
        f"KV cache quality against F16, {model_name}, prompts of "
        f"{', '.join(map(str, results['prompt_tokens']))} tokens:",
        "",
        "| KV type | same top token | KL mean | KL worst step | max logit diff "
        "| greedy tokens identical to F16 |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, row in results["types"].items():
        same = ", ".join(f"{n}/{row['steps']}" for n in row["greedy_same_tokens"])
        lines.append(
            f"| {name} | {row['top1_agreement']:.1%} | {row['kl_mean']:.5f} | "
            f"{row['kl_max']:.4f} | {row['max_logit_diff']:.3f} | {same} |"
        )
    return "\n".join(lines)


def _context(llama_cpp: Any, model: Any, kv_type: str, n_ctx: int, n_threads: int) -> Any:
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = n_ctx
    params.n_batch = params.n_ubatch = 512
    params.n_threads = params.n_threads_batch = n_threads
    params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
    params.type_k = params.type_v = getattr(llama_cpp, f"GGML_TYPE_{kv_type.upper()}")
    return llama_cpp.llama_init_from_model(model, params)


def _tokenize(vocab: Any, text: str) -> list[int]:
    import llama_cpp

    data = text.encode()
    buffer = (llama_cpp.llama_token * (len(data) + 8))()
    n = llama_cpp.llama_tokenize(vocab, data, len(data), buffer, len(buffer), True, False)
    return list(buffer[:n])


def _run(
    llama_cpp: Any, ctx: Any, prompt: list[int], steps: int, n_vocab: int, forced: list[int] | None
) -> tuple[list[int], np.ndarray]:
    """Decode `prompt`, then `steps` tokens: the greedy choice, or `forced`'s.
    Returns the tokens and the logits before each of them."""
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
    for start in range(0, len(prompt), 512):
        chunk = prompt[start : start + 512]
        array = (llama_cpp.llama_token * len(chunk))(*chunk)
        if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(array, len(chunk))) != 0:
            raise RuntimeError("llama_decode failed on the prompt")
    tokens: list[int] = []
    rows = np.empty((steps, n_vocab), dtype=np.float32)
    for step in range(steps):
        rows[step] = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), (n_vocab,))
        token = forced[step] if forced is not None else int(rows[step].argmax())
        tokens.append(token)
        array = (llama_cpp.llama_token * 1)(token)
        if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(array, 1)) != 0:
            raise RuntimeError("llama_decode failed")
    return tokens, rows


def _kl(p_logits: np.ndarray, q_logits: np.ndarray) -> np.ndarray:
    """KL(p || q) per row, from logits."""
    p = _log_softmax(p_logits)
    q = _log_softmax(q_logits)
    return (np.exp(p) * (p - q)).sum(axis=1)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
