"""`scripts/bench [options]` (python -m scripts.benchmark): run the benchmark,
print the markdown table and the targets, write JSON and a PNG chart."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from scripts.benchmark.report import markdown, write
from scripts.benchmark.run import ROOT, Say, Settings, run_benchmark


def client_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("client counts must be 1 or more")
    return sorted(set(counts))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Total decode tokens/s, time to first token and RSS for 1..N concurrent "
        "clients: our engine (in-process and behind model-compose up), the serial "
        "llama-cpp-python baseline and the raw batched llama_decode ceiling.",
    )
    p.add_argument("--model", help="a GGUF file (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument(
        "--clients",
        type=client_counts,
        default=[1, 2, 4, 8],
        help="concurrent clients, comma-separated (default 1,2,4,8)",
    )
    p.add_argument(
        "--max-tokens", type=int, default=128, help="completion tokens per request (default 128)"
    )
    p.add_argument(
        "--n-threads",
        type=int,
        help="llama.cpp threads (default: the engine's default, cpu_count // 2)",
    )
    p.add_argument("--n-ctx", type=int, default=2048, help="context per sequence (default 2048)")
    p.add_argument(
        "--repetitions", type=int, help="rounds per client count (default 3; 1 with --quick)"
    )
    p.add_argument(
        "--system-prompt-tokens",
        type=int,
        default=1000,
        help="length of the shared system prompt for warm-prefix TTFT (default 1000)",
    )
    p.add_argument(
        "--skip-server", action="store_true", help="leave out our engine behind model-compose up"
    )
    p.add_argument(
        "--skip-slots",
        action="store_true",
        help="leave out the RSS runs of our engine with 1 and with 4 slots",
    )
    p.add_argument(
        "--llama-server",
        nargs="?",
        const="",
        metavar="PATH",
        help="also measure llama.cpp's llama-server (same model, slots, context, threads and "
        "batch as our server, same clients); PATH defaults to the one "
        "scripts/build-llama-server keeps, built first if missing (minutes)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: one repetition, shorter slot and warm-prefix runs",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench-results",
        help="folder for results.json, results.md, chart.png (default bench-results/)",
    )
    p.add_argument(
        "--wait-idle",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="before each system, wait up to this long for other programs to leave the CPU "
        "(default 120; 0: do not wait)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="give up on a system that takes longer than this (default 1800)",
    )
    p.add_argument("--no-chart", action="store_true", help="do not draw chart.png")
    p.add_argument(
        "--compare-extra-buffers",
        action="store_true",
        help="instead: prompt processing and decode tokens/s at 1 and 4 clients with the "
        "build's extra CPU buffer types (weight repacking) against the fallback without "
        "them (MODEL_COMPOSE_EXTRA_BUFFERS=0), alternating, --repetitions times (default 3)",
    )
    p.add_argument(
        "--against",
        type=Path,
        metavar="DIR",
        help="instead: our server here against the same server in checkout DIR (e.g. a git "
        "worktree of the commit before a change), alternating, --repetitions rounds (default "
        "3): total tokens/s and TTFT per client count",
    )
    p.add_argument(
        "--compare-memory",
        type=Path,
        metavar="DIR",
        help="instead: prompt processing and decode tokens/s at 1 and 4 clients, load time and "
        "RSS, in checkout DIR (e.g. a worktree of the commit before a memory change), here, and "
        "here with use_mmap: false, alternating, --repetitions times (default 3)",
    )
    p.add_argument(
        "--kv-pool",
        type=int,
        metavar="N",
        help="instead: N greedy prompts through a stream per slot (alone, then together) and "
        "through slots sharing a pool of 2 contexts (kv_cache_size): outputs identical to "
        "alone, tok/s, KV allocated",
    )
    p.add_argument(
        "--kv-quality",
        action="store_true",
        help="instead: the quality a quantized KV cache (q8_0, q4_0) keeps against F16 on the "
        "same prompts (teacher-forced next-token distributions: top token, KL divergence, "
        "logit differences), prompts of about --n-ctx tokens, --max-tokens steps",
    )
    p.add_argument(
        "--queue",
        action="store_true",
        help="the Redis queue's cost: tok/s and a short run's latency through a front and one "
        "worker against a direct server (needs redis-server)",
    )
    p.add_argument(
        "--pp-tokens",
        type=int,
        default=256,
        help="prompt length for --compare-extra-buffers' prompt processing (default 256)",
    )
    return p


def settings_from(args: argparse.Namespace) -> Settings:
    if args.model:
        model = str(Path(args.model).expanduser().resolve())
        if not Path(model).is_file():
            raise SystemExit(f"scripts/bench: no such file: {args.model}")
    else:
        from convert.embedded import embedded_model_path

        path = embedded_model_path()
        if path is None:
            raise SystemExit(
                "scripts/bench: the embedded model is not installed (scripts/setup installs it); "
                "or pass --model FILE.gguf"
            )
        model = str(path)
    if args.n_threads is None:
        from runtime.engine.spec import default_threads

        args.n_threads = default_threads()
    repetitions = args.repetitions or (1 if args.quick else 3)
    llama_server = None if args.llama_server is None else llama_server_binary(args.llama_server)
    return Settings(
        model=model,
        n_ctx=args.n_ctx,
        n_threads=args.n_threads,
        max_tokens=args.max_tokens,
        clients=args.clients,
        repetitions=repetitions,
        parallel=max(args.clients),
        system_prompt_tokens=args.system_prompt_tokens,
        slot_max_tokens=8 if args.quick else 32,
        skip_server=args.skip_server,
        skip_slots=args.skip_slots,
        llama_server=llama_server,
        wait_idle_s=args.wait_idle,
        timeout_s=args.timeout,
    )


def llama_server_binary(given: str) -> str:
    """--llama-server's PATH, or the cached build (built now if missing)."""
    if not given:
        from scripts.benchmark.llama_server import default_binary
        from scripts.llama_build.wheels import SetupError

        try:
            return str(default_binary(lambda line: print(line, file=sys.stderr, flush=True)))
        except SetupError as exc:
            raise SystemExit(f"scripts/bench: building llama-server failed: {exc}") from None
    path = Path(given).expanduser().resolve()
    if not path.is_file():
        raise SystemExit(f"scripts/bench: no such file: {given}")
    return str(path)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = settings_from(args)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.compare_extra_buffers or args.compare_memory:
        return compare_extra_buffers(settings, args, say)
    if args.against:
        return compare_against(settings, args, say)
    if args.kv_quality:
        return kv_quality(settings, args, say)
    if args.kv_pool:
        return kv_pool(settings, args, say)
    if args.queue:
        return queue_cost(settings, args, say)
    results = run_benchmark(settings, say)
    print(markdown(results))
    for path in write(results, args.out, chart=not args.no_chart):
        say(f"wrote {path}")
    return 0


def compare_extra_buffers(settings: Settings, args: argparse.Namespace, say: Say) -> int:
    from scripts.benchmark import buffers

    payload = {
        **asdict(settings),
        "pp_tokens": args.pp_tokens,
        "decode_tokens": min(settings.max_tokens, 64),
    }
    if args.compare_memory:
        modes, name = buffers.memory_modes(checkout(args.compare_memory)), "memory"
    else:
        modes, name = buffers.EXTRA_BUFFER_MODES, "extra-buffers"
    summary = buffers.compare(payload, settings.repetitions, say, modes)
    publish(args.out, name, summary, buffers.markdown(summary, Path(settings.model).name), say)
    return 0


def kv_quality(settings: Settings, args: argparse.Namespace, say: Say) -> int:
    from scripts.benchmark import kv_quality as quality

    say(f"KV cache quality: {Path(settings.model).name}, prompts of ~{settings.n_ctx} tokens")
    results = quality.measure(
        settings.model, settings.n_ctx, settings.max_tokens, settings.n_threads
    )
    table = quality.markdown(results, Path(settings.model).name)
    publish(args.out, "kv-quality", results, table, say)
    return 0


def kv_pool(settings: Settings, args: argparse.Namespace, say: Say) -> int:
    from scripts.benchmark import kv_pool as pool

    say(f"KV pool: {args.kv_pool} prompts, {settings.parallel} slots")
    results = pool.measure(asdict(settings), args.kv_pool)
    publish(args.out, "kv-pool", results, pool.markdown(results, Path(settings.model).name), say)
    return 0


def queue_cost(settings: Settings, args: argparse.Namespace, say: Say) -> int:
    from scripts.benchmark import queue_cost as cost

    results = cost.measure(asdict(settings), say)
    publish(args.out, "queue", results, cost.markdown(results, Path(settings.model).name), say)
    return 0


def compare_against(settings: Settings, args: argparse.Namespace, say: Say) -> int:
    from scripts.benchmark import against

    payload = {**asdict(settings), "repetitions": 1}
    summary = against.compare(payload, checkout(args.against), settings.repetitions, say)
    publish(args.out, "against", summary, against.markdown(summary), say)
    return 0


def checkout(path: Path) -> Path:
    """`path`, when it is a checkout of this project (an --against or
    --compare-memory DIR)."""
    if not (path / "runtime").is_dir():
        raise SystemExit(f"scripts/bench: {path} is not a checkout of this project")
    return path


def publish(out: Path, name: str, data: dict[str, Any], table: str, say: Say) -> None:
    """Print a comparison's table; keep it and its raw figures as OUT/NAME.md and .json."""
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=2, default=str))
    (out / f"{name}.md").write_text(table + "\n")
    say(f"wrote {out / f'{name}.json'}")


if __name__ == "__main__":
    sys.exit(main())
