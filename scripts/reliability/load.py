"""`scripts/load` (python -m scripts.reliability.load): N concurrent streaming
clients send a fixed count of requests, alternately to /v1/chat/completions
and /api/workflows/runs, against a real `model-compose up` with the default
4 slots and a waiting room of 64. Checks: no crash, no 5xx but 503 +
Retry-After (retried), every request answered with exactly the answer its
prompt gets alone (greedy); reports latency, TTFT and throughput."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import asdict, dataclass
from typing import Any

from scripts.benchmark.server_process import ServerProcess
from scripts.reliability import checks, report
from scripts.reliability.clients import ENDPOINTS, Outcome, stream_request
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
from scripts.reliability.prompts import load_prompts
from scripts.reliability.reference import reference_answers
from scripts.reliability.ties import Referee


@dataclass
class LoadSettings(RunSettings):
    clients: int = 64
    requests: int = 256
    max_tokens: int = 32
    prompts: int = 8


def plan(settings: LoadSettings, prompt_count: int) -> list[tuple[str, int]]:
    """(endpoint, prompt) of every request: endpoints alternate, and each
    endpoint goes through every prompt in turn."""
    return [
        (ENDPOINTS[i % len(ENDPOINTS)], (i // len(ENDPOINTS)) % prompt_count)
        for i in range(settings.requests)
    ]


async def drive(server: ServerProcess, settings: LoadSettings, say: Say) -> dict[str, Any]:
    prompts = load_prompts(settings.prompts)
    phases = Phases(say)
    async with client_for(server, settings.clients + 8) as client:
        with phases.phase(
            "references", f"reference answers: {len(prompts)} prompts × {len(ENDPOINTS)}, alone …"
        ):
            references = await reference_answers(client, prompts, settings.max_tokens, ENDPOINTS)
        requests = plan(settings, len(prompts))
        outcomes: list[Outcome | None] = [None] * len(requests)
        # Shared by the clients: each one takes the next request when it is free.
        queue = iter(range(len(requests)))

        async def one_client() -> None:
            for i in queue:
                endpoint, prompt = requests[i]
                outcomes[i] = await stream_request(
                    client, endpoint, prompts[prompt], prompt, settings.max_tokens
                )

        with phases.phase(
            "load", f"{len(requests)} requests from {settings.clients} concurrent clients …"
        ):
            await asyncio.gather(*(one_client() for _ in range(settings.clients)))
        with phases.phase("settle", "waiting for the server to be idle …"):
            status = await final_status(client)
    memory = server.memory()
    done = [o for o in outcomes if o is not None]
    # Answers that differ from their reference are judged on the model's logits.
    referee = Referee(settings.model, settings.n_ctx, prompts)
    try:
        found = [
            checks.no_failed_requests(done),
            checks.every_request_answered(done),
            checks.answers_match(done, references, referee),
            checks.idle_at_end(status),
        ]
    finally:
        referee.close()
    return {
        "figures": report.figures(done, phases.seconds["load"]),
        "phases_s": phases.seconds,
        "memory": {
            "server RSS after the run": memory["rss_bytes"],
            "server peak RSS": memory["peak_rss_bytes"],
        },
        "status_after": status,
        "prompts": prompts,
        "references": {name: o.to_json() for name, o in references.items()},
        "outcomes": [o.to_json() for o in done],
        "checks": found,
    }


def run_load(settings: LoadSettings, say: Say = lambda line: None) -> dict[str, Any]:
    return run_with_server(
        f"Load: {settings.requests} requests, {settings.clients} concurrent streaming clients",
        asdict(settings),
        settings.server(),
        lambda server: drive(server, settings, say),
        settings.timeout_s,
        say,
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/load",
        description="Concurrent streaming clients against a real model-compose up: no crash, "
        "no 5xx but 503 + Retry-After, every answer equal to the prompt's answer alone; "
        "latency, TTFT and throughput.",
    )
    p.add_argument("--clients", type=positive, default=64, help="concurrent clients (64)")
    p.add_argument("--requests", type=positive, default=256, help="requests in all (256)")
    p.add_argument("--max-tokens", type=positive, default=32, help="tokens per answer (32)")
    add_server_options(p, "load")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = LoadSettings(
        model=model_path(args.model),
        clients=args.clients,
        requests=args.requests,
        max_tokens=args.max_tokens,
        parallel=args.parallel,
        max_queue=args.max_queue,
        n_threads=args.n_threads,
        timeout_s=args.timeout,
    )
    return run_script("load", run_load, settings, args.out, say)


if __name__ == "__main__":
    sys.exit(main())
