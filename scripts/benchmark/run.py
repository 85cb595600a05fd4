"""The whole benchmark: each system in its own fresh process (so each RSS is
that system's alone), one after the other, then the report.

Order: raw ceiling, serial baseline, our engine in-process (+ warm-prefix
TTFT), our engine behind `model-compose up`, llama.cpp's llama-server (with
--llama-server), and our engine with 1 and with 4 slots for the RSS
comparison.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scripts.benchmark.machine import LoadMeter, describe, wait_for_idle
from scripts.benchmark.stats import RunRecord, summarize

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = {
    "ceiling": "raw ceiling (batched llama_decode)",
    "serial": "serial baseline (Llama.create_completion + lock)",
    "engine": "our engine, in-process",
    "server": "our engine, model-compose up → /v1/completions",
    "llama-server": "llama.cpp's llama-server → /v1/completions",
}
SLOT_COUNTS = (1, 4)
Say = Callable[[str], None]


@dataclass
class Settings:
    model: str
    n_ctx: int = 2048
    n_batch: int = 512
    n_threads: int = 1
    max_tokens: int = 128
    clients: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    repetitions: int = 3
    # Slots of our engine for the throughput runs: every client decodes at once.
    parallel: int = 8
    system_prompt_tokens: int = 1000
    warm_prefix_max_tokens: int = 4
    slot_clients: int = 4
    slot_max_tokens: int = 32
    skip_server: bool = False
    skip_slots: bool = False
    # llama.cpp's llama-server binary to measure beside our server; None: not measured.
    llama_server: str | None = None
    # Before each system, wait up to this long for other programs to go quiet.
    wait_idle_s: float = 120.0
    # Longest a system's measurement may take.
    timeout_s: float = 1800.0

    def worker_json(self) -> str:
        return json.dumps(asdict(self))


def run_worker(job: str, settings: Settings, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one job in a fresh interpreter; its last stdout line is the JSON answer."""
    return run_job_process(job, {**asdict(settings), **(extra or {})}, settings.timeout_s)


def run_job_process(
    job: str,
    payload: dict[str, Any],
    timeout_s: float,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
) -> dict[str, Any]:
    """`python -m scripts.benchmark.worker JOB PAYLOAD` in checkout `cwd` (its
    `runtime` and `scripts` come first on the path), with `env` added to ours."""
    env = {
        **os.environ,
        **(env or {}),
        "PYTHONPATH": os.pathsep.join([str(cwd), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "scripts.benchmark.worker", job, json.dumps(payload)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(
            f"the {job} worker did not finish in {timeout_s:.0f}s. Is another "
            "program using the CPU? (llama.cpp slows down badly when its threads share "
            "cores with others.) Or lower --max-tokens / --clients for a large model."
        ) from None
    if done.returncode != 0:
        raise RuntimeError(
            f"the {job} worker failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def kv_sizes(settings: Settings) -> dict[str, int] | None:
    """The KV cache bytes per slot count, from the memory preflight's estimate."""
    from convert.metadata import read_gguf_info
    from convert.preflight import estimate, shape_of

    shape = shape_of(read_gguf_info(Path(settings.model)))
    if shape is None:
        return None
    return {
        str(slots): estimate(
            shape, settings.n_ctx, n_parallel=slots, n_batch=settings.n_batch
        ).kv_cache
        for slots in SLOT_COUNTS
    }


def run_benchmark(settings: Settings, say: Say = lambda line: None) -> dict[str, Any]:
    """Measure every system; the raw numbers and per-row summaries, as JSON data."""
    started = time.time()
    whole_run = LoadMeter()
    results: dict[str, Any] = {
        "settings": asdict(settings),
        "machine": describe(settings.model, settings.n_threads),
        "definitions": definitions(),
        "systems": {},
    }
    jobs: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("ceiling", lambda: run_worker("ceiling", settings)),
        ("serial", lambda: run_worker("serial", settings)),
        ("engine", lambda: run_worker("engine", settings)),
    ]
    if not settings.skip_server:
        from scripts.benchmark.server_bench import server_job

        jobs.append(("server", lambda: server_job(asdict(settings))))
    if settings.llama_server:
        from scripts.benchmark.llama_server import llama_server_job

        jobs.append(("llama-server", lambda: llama_server_job(asdict(settings))))
    for name, job in jobs:
        waited = _wait_for_idle(settings, say)
        say(f"measuring {SYSTEMS[name]} …")
        t0 = time.perf_counter()
        meter = LoadMeter()
        raw = job()
        raw["other_load"] = meter.read()
        raw["waited_for_idle_s"] = waited
        records = [
            RunRecord(**{k: v for k, v in r.items() if k not in ("total_tokens", "tokens_per_s")})
            for r in raw.pop("records")
        ]
        rows = [summarize([r for r in records if r.clients == n]) for n in settings.clients]
        results["systems"][name] = {
            "label": SYSTEMS[name],
            "rows": rows,
            "seconds": time.perf_counter() - t0,
            **raw,
        }
    if not settings.skip_slots:
        results["slots"] = {}
        for slots in SLOT_COUNTS:
            _wait_for_idle(settings, say)
            say(f"measuring RSS with {slots} slot(s) …")
            results["slots"][str(slots)] = run_worker("slots", settings, {"parallel": slots})
        results["kv_cache_bytes"] = kv_sizes(settings)
    results["elapsed_s"] = time.time() - started
    results["machine"]["other_load"] = whole_run.read()
    from scripts.benchmark.report import targets, versus_llama_server

    results["targets"] = targets(results)
    results["versus_llama_server"] = versus_llama_server(results)
    return results


def _wait_for_idle(settings: Settings, say: Say) -> float:
    if settings.wait_idle_s <= 0:
        return 0.0
    waited = wait_for_idle(settings.wait_idle_s)
    if waited > 5:
        say(f"waited {waited:.0f}s for other programs to leave the CPU")
    return waited


def definitions() -> dict[str, str]:
    return {
        "tokens_per_s": "all completion tokens of the round / wall time from the first "
        "submit to the last finish (prefill included); median over repetitions",
        "ttft": "per request, submit → first text (first sampled token for the ceiling); "
        "p50/p95 over every request of every repetition",
        "rss": "VmRSS of the process holding the model, after its runs; split into RssAnon "
        "(anonymous: heap, repacked weights, KV cache) and RssFile (file-backed: the mapped "
        "model file, libraries)",
    }
