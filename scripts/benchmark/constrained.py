"""What a JSON schema costs: our engine in-process, the same story prompts
with and without a schema, alternating round by round (so that a change in
the machine's load hits both alike), at 1 and 4 clients.

The schema makes the model write JSON from its first token (a title, a list
of characters, then the story as a string), and its story string is at least
2,000 characters long, so that every request still generates exactly
`max_tokens` tokens: both sides count the same tokens, and the difference in
time per token is the grammar's (llama.cpp's grammar sampler, and our check
of each sampled token against it).
"""

from __future__ import annotations

from typing import Any

from scripts.benchmark import prompts
from scripts.benchmark.stats import RunRecord, summarize

CLIENTS = (1, 4)
SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 60},
        "characters": {
            "type": "array",
            "items": {"type": "string", "maxLength": 30},
            "minItems": 1,
            "maxItems": 4,
        },
        "story": {"type": "string", "minLength": 2000},
    },
    "required": ["title", "characters", "story"],
}
# Far from the numbers of the throughput rounds: every prompt is new.
FIRST_PROMPT = 100_000


async def measure(engine: Any, settings: dict[str, Any]) -> dict[str, Any]:
    """Free and schema rounds, alternating, `repetitions` of each per client count."""
    from runtime.engine.json_schema import schema_grammar
    from scripts.benchmark import engine_bench

    grammar = schema_grammar(SCHEMA)
    clients = [n for n in CLIENTS if n <= settings["parallel"]]
    plan = prompts.rounds(clients, settings["repetitions"] * 2, start=FIRST_PROMPT)
    records: dict[str, list[RunRecord]] = {"free": [], "schema": []}
    for index, round_prompts in enumerate(plan):
        # Per client count: free, schema, free, schema... (rounds() cycles the counts).
        kind = "schema" if (index // len(clients)) % 2 else "free"
        records[kind].append(
            await engine_bench.run_clients(
                engine,
                round_prompts,
                settings["max_tokens"],
                grammar=grammar if kind == "schema" else None,
            )
        )
    rows = []
    for n in clients:
        free = summarize([r for r in records["free"] if r.clients == n])
        schema = summarize([r for r in records["schema"] if r.clients == n])
        rows.append({"clients": n, "free": free, "schema": schema, **cost(free, schema)})
    return {"schema": SCHEMA, "rows": rows}


def cost(free: dict[str, Any], schema: dict[str, Any]) -> dict[str, float | None]:
    """The schema's throughput against none, and what it adds per generated
    token (of all the clients' tokens together: the wall time of a token)."""
    if not free["tokens_per_s"] or not schema["tokens_per_s"]:
        return {"ratio": None, "ms_per_token": None}
    return {
        "ratio": schema["tokens_per_s"] / free["tokens_per_s"],
        "ms_per_token": 1000 / schema["tokens_per_s"] - 1000 / free["tokens_per_s"],
    }


def markdown(constrained: dict[str, Any]) -> list[str]:
    lines = [
        "| JSON schema (our engine, in-process) | clients | total tok/s without | with "
        "| ratio | cost per token ms | tokens/request with |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in constrained["rows"]:
        schema = row["schema"]
        low, high = schema["completion_tokens_min"], schema["completion_tokens_max"]
        tokens = str(low) if low == high else f"{low}–{high}"
        ratio = "–" if row["ratio"] is None else f"{row['ratio']:.2f}"
        ms = "–" if row["ms_per_token"] is None else f"{row['ms_per_token']:.2f}"
        lines.append(
            f"| story as JSON | {row['clients']} | {row['free']['tokens_per_s']:.1f} "
            f"| {schema['tokens_per_s']:.1f} | {ratio} | {ms} | {tokens} |"
        )
    return lines
