"""`scripts/bench --compare-extra-buffers`: what the build's extra CPU buffer
types (weight repacking; AMX where built) are worth, against the emergency
fallback that loads models without them (MODEL_COMPOSE_EXTRA_BUFFERS=0, what
runtime/engine/llama/extra_buffers.py does on a build with the crashing AMX kernel).

Both run our engine in-process, in fresh worker processes, alternating
(build, fallback, build, fallback, ...) so that a change in the machine's load
hits both alike; each figure is the median over the repetitions:
- prompt processing tokens/s: 1 client, and 4 clients submitted together,
  each with its own prompt of about `pp_tokens` tokens (one completion token);
- decode tokens/s: 1 and 4 clients, after the first token of the last client
  and until the last finish;
- the load time, and the process's RSS (anonymous + file-backed) after the runs.

`--compare-memory DIR` runs the same job in three modes: the checkout DIR
(e.g. the commit before a memory change, with its own scripts: one older
than this job's memory report leaves RSS out), this one, and this one with
the model read into memory instead of mapped (`use_mmap: false`).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.benchmark import prompts
from scripts.benchmark.stats import memory

CLIENTS = (1, 4)


@dataclass(frozen=True)
class Mode:
    """How one side runs: extra environment, the checkout, spec fields."""

    env: dict[str, str] = field(default_factory=dict)
    tree: Path | None = None  # None: this checkout
    spec: dict[str, Any] = field(default_factory=dict)


EXTRA_BUFFER_MODES = {
    "build": Mode(),
    "fallback": Mode(env={"MODEL_COMPOSE_EXTRA_BUFFERS": "0"}),
}


def memory_modes(before: Path) -> dict[str, Mode]:
    return {"before": Mode(tree=before), "after": Mode(), "read": Mode(spec={"use_mmap": False})}


def job(settings: dict[str, Any]) -> dict[str, Any]:
    """One worker's measurement (worker.py runs it in a fresh process)."""
    return asyncio.run(_job(settings))


async def _job(settings: dict[str, Any]) -> dict[str, Any]:
    from runtime.engine.llama import extra_buffers
    from scripts.benchmark import engine_bench

    long_text = prompts.system_prompt_for(settings["model"], settings["pp_tokens"])
    spec = engine_bench.make_spec(
        settings["model"], settings["n_ctx"], settings["n_batch"], settings["n_threads"],
        max(CLIENTS), **settings.get("spec", {}),
    )  # fmt: skip
    loading = time.perf_counter()
    pool, engine = await engine_bench.acquire(spec)
    result: dict[str, Any] = {
        "load_s": time.perf_counter() - loading,
        "extra_buffers": extra_buffers.decision().allowed,
        "pp": {},
        "decode": {},
    }
    try:
        await engine_bench.run_clients(engine, prompts.warmup(max(CLIENTS)), 4)
        number = 0  # every prompt new: nothing comes from the prefix cache
        for clients in CLIENTS:
            texts = [f"Request {number + i}.\n{long_text}" for i in range(clients)]
            number += clients
            started = time.perf_counter()
            answers = await asyncio.gather(
                *(engine_bench.one_request(engine, text, 1) for text in texts)
            )
            wall = time.perf_counter() - started
            result["pp"][str(clients)] = (
                sum(a.prompt_tokens - a.cached_tokens for a in answers) / wall
            )
        for clients in CLIENTS:
            (round_prompts,) = prompts.rounds([clients], 1)
            round_prompts = [f"Run {number}. {text}" for text in round_prompts]
            number += clients
            started = time.perf_counter()
            answers = await asyncio.gather(
                *(
                    engine_bench.one_request(engine, text, settings["decode_tokens"])
                    for text in round_prompts
                )
            )
            decoding = time.perf_counter() - started - max(a.ttft_s for a in answers)
            tokens = sum(a.completion_tokens - 1 for a in answers)
            result["decode"][str(clients)] = tokens / decoding if decoding > 0 else 0.0
        return {**result, **memory()}
    finally:
        await pool.close()


def compare(
    settings: dict[str, Any], repetitions: int, say: Any, modes: dict[str, Mode] | None = None
) -> dict[str, Any]:
    """Run every mode `repetitions` times, alternating; medians per figure."""
    from scripts.benchmark.run import ROOT, run_job_process

    modes = modes or EXTRA_BUFFER_MODES
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in modes}
    for repetition in range(repetitions):
        for name, mode in modes.items():
            say(f"{name}, repetition {repetition + 1} of {repetitions} …")
            runs[name].append(
                run_job_process(
                    "buffers",
                    {**settings, "spec": mode.spec},
                    settings["timeout_s"],
                    mode.env,
                    cwd=mode.tree or ROOT,
                )
            )
    summary: dict[str, Any] = {"settings": settings, "runs": runs, "median": {}}
    for mode, done in runs.items():
        summary["median"][mode] = {
            "extra_buffers": done[0]["extra_buffers"],
            "load_s": statistics.median(r["load_s"] for r in done),
            # An older checkout's job may not say (then the figure is left out).
            **{
                key: statistics.median(r[key] for r in done)
                for key in ("rss_bytes", "rss_anon_bytes", "rss_file_bytes", "peak_rss_bytes")
                if all(key in r for r in done)
            },
            **{
                f"{kind}_{clients}": statistics.median(r[kind][str(clients)] for r in done)
                for kind in ("pp", "decode")
                for clients in CLIENTS
            },
        }
    return summary


def markdown(summary: dict[str, Any], model_name: str) -> str:
    """A column per mode; a last column, the first mode ÷ the second (the
    build ÷ the fallback; before ÷ after)."""
    medians = summary["median"]
    names = list(medians)
    lines = [
        f"| {model_name} | " + " | ".join(names) + f" | {names[0]} ÷ {names[1]} |",
        "| --- |" + " ---: |" * (len(names) + 1),
    ]

    def row(label: str, key: str, scale: float = 1.0, digits: int = 1) -> None:
        values = [medians[name].get(key) for name in names]
        cells = ["–" if v is None else f"{v / scale:,.{digits}f}" for v in values]
        ratio = f"{values[0] / values[1]:.2f}×" if values[0] is not None and values[1] else "–"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")

    for kind, label in (("pp", "prompt processing"), ("decode", "decode")):
        for clients in CLIENTS:
            row(
                f"{label}, {clients} client{'s' if clients > 1 else ''} (tok/s)",
                f"{kind}_{clients}",
            )
    row("load (s)", "load_s")
    if any("rss_bytes" in medians[name] for name in names):
        for key, label in (
            ("rss_bytes", "RSS (MB)"),
            ("rss_anon_bytes", "anonymous (MB)"),
            ("rss_file_bytes", "file-backed (MB)"),
            ("peak_rss_bytes", "peak RSS (MB)"),
        ):
            row(label, key, 1e6, 0)
    return "\n".join(lines)
