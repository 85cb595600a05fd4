"""`scripts/soak` (python -m scripts.reliability.soak): many requests through
a real `model-compose up`, in waves of random size (1 to 8 at once), with
prompts from a few tokens to a few hundred and about a quarter of them
cancelled on purpose (the client hangs up after some text or after a random
delay, or asks the cancel route). A warm-up first (ending with the longest
prompt in every slot: KV pages are resident as far as cells were written),
after which the server's RSS is recorded. Checks: no crash and no 5xx, every request not cancelled
answered exactly as its prompt alone, every cancelled one received the start
of that answer, afterwards all slots free and nothing queued, RSS within 5%
of its post-warm-up value."""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from dataclasses import asdict, dataclass
from typing import Any

from scripts.benchmark.server_process import ServerProcess
from scripts.benchmark.stats import rss_bytes
from scripts.reliability import checks, report
from scripts.reliability.clients import (
    CANCEL_ROUTE,
    DISCONNECT,
    DISCONNECT_TIMER,
    ENDPOINTS,
    RUNS,
    Cancel,
    Outcome,
    stream_request,
)
from scripts.reliability.compose import RunSettings
from scripts.reliability.harness import (
    Phases,
    Say,
    client_for,
    final_status,
    run_script,
    run_with_server,
)
from scripts.reliability.options import add_server_options, model_path, positive, say
from scripts.reliability.prompts import soak_prompts
from scripts.reliability.reference import reference_answers
from scripts.reliability.server_state import wait_until_idle
from scripts.reliability.ties import Referee

# One planned request: endpoint, prompt index, how it is cancelled (None: not).
Planned = tuple[str, int, Cancel | None]


@dataclass
class SoakSettings(RunSettings):
    requests: int = 1000
    warmup: int = 50
    max_concurrency: int = 8
    cancel_share: float = 0.25
    max_tokens: int = 16
    prompts: int = 16
    max_words: int = 300
    seed: int = 7
    rss_tolerance: float = 0.05


def random_cancel(rng: random.Random, endpoint: str, max_tokens: int) -> Cancel:
    """Hang up after some text, or after a delay (often before the first
    token: mid-prefill or still queued), or (workflow runs) ask the cancel route."""
    ways = [DISCONNECT, DISCONNECT_TIMER] + ([CANCEL_ROUTE] if endpoint == RUNS else [])
    how = rng.choice(ways)
    return Cancel(
        how,
        after_deltas=rng.randint(1, max(1, max_tokens // 2)),
        after_s=rng.uniform(0.0, 1.0),
    )


def plan(settings: SoakSettings, rng: random.Random, count: int) -> list[Planned]:
    requests: list[Planned] = []
    for _ in range(count):
        endpoint = rng.choice(ENDPOINTS)
        prompt = rng.randrange(settings.prompts)
        cancel = (
            random_cancel(rng, endpoint, settings.max_tokens)
            if rng.random() < settings.cancel_share
            else None
        )
        requests.append((endpoint, prompt, cancel))
    return requests


async def in_waves(
    client: Any,
    requests: list[Planned],
    prompts: list[str],
    settings: SoakSettings,
    rng: random.Random,
) -> list[Outcome]:
    """The requests in waves of 1 to `max_concurrency`, each wave sent together."""
    outcomes: list[Outcome] = []
    position = 0
    while position < len(requests):
        wave = requests[position : position + rng.randint(1, settings.max_concurrency)]
        position += len(wave)
        outcomes += await asyncio.gather(
            *(
                stream_request(client, endpoint, prompts[p], p, settings.max_tokens, cancel)
                for endpoint, p, cancel in wave
            )
        )
    return outcomes


async def fill_every_slot(client: Any, prompts: list[str], settings: SoakSettings) -> None:
    """The longest prompt in every slot at once. A KV cache's pages become
    resident as its cells are first written (engine.llama.residency), up to
    the most each slot has held: after this no soak request can take a slot
    further, so RSS reaches its steady size here and growth after is a leak."""
    status = await final_status(client)
    slots = max((model["slots"] for model in (status or {}).get("models", [])), default=1)
    longest = max(range(len(prompts)), key=lambda index: len(prompts[index]))
    await asyncio.gather(
        *(
            stream_request(client, ENDPOINTS[0], prompts[longest], longest, settings.max_tokens)
            for _ in range(slots)
        )
    )


async def settled_rss(client: Any, server: ServerProcess) -> int:
    """The server's RSS once it is idle and has had a second to free what it frees."""
    await wait_until_idle(client)
    await asyncio.sleep(1.0)
    return rss_bytes(server.pid)


async def drive(server: ServerProcess, settings: SoakSettings, say: Say) -> dict[str, Any]:
    rng = random.Random(settings.seed)
    prompts = soak_prompts(settings.prompts, settings.seed, settings.max_words)
    phases = Phases(say)
    async with client_for(server, settings.max_concurrency + 8) as client:
        with phases.phase(
            "references", f"reference answers: {len(prompts)} prompts × {len(ENDPOINTS)}, alone …"
        ):
            references = await reference_answers(client, prompts, settings.max_tokens, ENDPOINTS)
        with phases.phase("warm-up", f"warm-up: {settings.warmup} requests …"):
            await in_waves(client, plan(settings, rng, settings.warmup), prompts, settings, rng)
            await fill_every_slot(client, prompts, settings)
            warm_rss = await settled_rss(client, server)
        with phases.phase("soak", f"soak: {settings.requests} requests …"):
            outcomes = await in_waves(
                client, plan(settings, rng, settings.requests), prompts, settings, rng
            )
        wall_s = phases.seconds["soak"]
        with phases.phase("settle", "waiting for the server to be idle …"):
            status = await final_status(client)
            end_rss = await settled_rss(client, server)
    # Answers that differ from their reference are judged on the model's logits.
    referee = Referee(settings.model, settings.n_ctx, prompts)
    try:
        found = [
            checks.no_failed_requests(outcomes),
            checks.every_request_answered(outcomes),
            checks.answers_match(outcomes, references, referee),
            checks.cancelled_are_prefixes(outcomes, references, referee),
            checks.idle_at_end(status),
            checks.rss_stable(warm_rss, end_rss, settings.rss_tolerance),
        ]
    finally:
        referee.close()
    return {
        "figures": report.figures(outcomes, wall_s),
        "phases_s": phases.seconds,
        "memory": {
            "server RSS after warm-up": warm_rss,
            "server RSS at the end": end_rss,
            "server peak RSS": server.memory()["peak_rss_bytes"],
        },
        "status_after": status,
        "prompts": prompts,
        "references": {name: o.to_json() for name, o in references.items()},
        "outcomes": [o.to_json() for o in outcomes],
        "checks": found,
    }


def run_soak(settings: SoakSettings, say: Say = lambda line: None) -> dict[str, Any]:
    return run_with_server(
        f"Soak: {settings.requests} requests, random cancellations and prompt lengths",
        asdict(settings),
        settings.server(),
        lambda server: drive(server, settings, say),
        settings.timeout_s,
        say,
    )


def share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/soak",
        description="Many requests with random cancellations and prompt lengths through a real "
        "model-compose up: afterwards all slots free, nothing queued, RSS stable.",
    )
    p.add_argument("--requests", type=positive, default=1000, help="requests after warm-up (1000)")
    p.add_argument("--warmup", type=positive, default=50, help="warm-up requests (50)")
    p.add_argument(
        "--max-concurrency", type=positive, default=8, help="largest wave of requests (8)"
    )
    p.add_argument(
        "--cancel-share", type=share, default=0.25, help="share of requests cancelled (0.25)"
    )
    p.add_argument("--max-tokens", type=positive, default=16, help="tokens per answer (16)")
    p.add_argument(
        "--prompts", type=positive, default=16, help="distinct prompts, 1 to 300 words (16)"
    )
    p.add_argument(
        "--max-words", type=positive, default=300, help="words in the longest prompt (300)"
    )
    p.add_argument("--seed", type=int, default=7, help="random seed of the plan and prompts (7)")
    p.add_argument(
        "--rss-tolerance",
        type=share,
        default=0.05,
        help="largest RSS change after warm-up, as a share (0.05)",
    )
    add_server_options(p, "soak")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = SoakSettings(
        model=model_path(args.model),
        requests=args.requests,
        warmup=args.warmup,
        max_concurrency=args.max_concurrency,
        cancel_share=args.cancel_share,
        max_tokens=args.max_tokens,
        prompts=args.prompts,
        max_words=args.max_words,
        seed=args.seed,
        rss_tolerance=args.rss_tolerance,
        parallel=args.parallel,
        max_queue=args.max_queue,
        n_threads=args.n_threads,
        timeout_s=args.timeout,
    )
    return run_script("soak", run_soak, settings, args.out, say)


if __name__ == "__main__":
    sys.exit(main())
