"""`scripts/bench --against DIR`: our server in this checkout against the same
server in another checkout DIR (e.g. a `git worktree` of the commit before a
change), in one sitting: each round is the server job (`model-compose up`,
streaming `/v1/completions` clients, see server_bench.py) run in a fresh
process whose `runtime` package comes from that checkout, alternating
(other, this, other, this, ...) so that the machine's drift hits both alike.
Each figure is the median over the rounds: total tokens/s and p50 TTFT per
client count, and the ratio this ÷ other; and the server's RSS after its
runs, anonymous and file-backed.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from scripts.benchmark.stats import RunRecord, summarize


def compare(settings: dict[str, Any], other: Path, rounds: int, say: Any) -> dict[str, Any]:
    from scripts.benchmark.run import ROOT, run_job_process

    trees = {"other": other.resolve(), "this": ROOT}
    rows: dict[str, list[list[dict[str, Any]]]] = {name: [] for name in trees}
    resident: dict[str, list[dict[str, int]]] = {name: [] for name in trees}
    for number in range(rounds):
        for name, tree in trees.items():
            say(f"server in {tree}, round {number + 1} of {rounds} …")
            raw = run_job_process("server", settings, settings["timeout_s"], cwd=tree)
            records = [
                RunRecord(
                    **{k: v for k, v in r.items() if k not in ("total_tokens", "tokens_per_s")}
                )
                for r in raw["records"]
            ]
            resident[name].append({k: v for k, v in raw.items() if k.endswith("_bytes")})
            rows[name].append(
                [summarize([r for r in records if r.clients == n]) for n in settings["clients"]]
            )
    summary: dict[str, Any] = {
        "trees": {k: str(v) for k, v in trees.items()},
        "rounds": rows,
        "median": {},
    }
    for name, runs in rows.items():
        summary["median"][name] = {
            str(clients): {
                key: statistics.median(run[index][key] for run in runs)
                for key in ("tokens_per_s", "ttft_p50_s")
            }
            for index, clients in enumerate(settings["clients"])
        }
        summary["median"][name]["rss"] = {
            key: statistics.median(r[key] for r in resident[name])
            for key in ("rss_bytes", "rss_anon_bytes", "rss_file_bytes")
            if all(key in r for r in resident[name])
        }
    return summary


RSS_LABELS = {"rss_bytes": "RSS", "rss_anon_bytes": "anonymous", "rss_file_bytes": "file-backed"}
RSS_RULE = "| --- | ---: | ---: | ---: |"


def markdown(summary: dict[str, Any]) -> str:
    this, other = summary["median"]["this"], summary["median"]["other"]
    lines = [
        "| clients | tok/s other | tok/s this | this ÷ other | TTFT p50 other | TTFT p50 this |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for clients, mine in this.items():
        if clients == "rss":
            continue
        theirs = other[clients]
        ratio = mine["tokens_per_s"] / theirs["tokens_per_s"] if theirs["tokens_per_s"] else 0.0
        ttfts = f"{theirs['ttft_p50_s'] * 1000:.0f} ms | {mine['ttft_p50_s'] * 1000:.0f} ms"
        lines.append(
            f"| {clients} | {theirs['tokens_per_s']:.1f} | {mine['tokens_per_s']:.1f} "
            f"| {ratio:.3f}× | {ttfts} |"
        )
    mine, theirs = this.get("rss", {}), other.get("rss", {})
    if "rss_bytes" in mine and "rss_bytes" in theirs:
        lines += [
            "",
            "| server RSS (MB) | other | this | other ÷ this |",
            "| --- |" + " ---: |" * 3,
        ]
        labels = {
            "rss_bytes": "RSS",
            "rss_anon_bytes": "anonymous",
            "rss_file_bytes": "file-backed",
        }
        for key, label in labels.items():
            if key in mine and key in theirs:
                ratio = theirs[key] / mine[key] if mine[key] else float("nan")
                figures = f"{theirs[key] / 1e6:,.0f} | {mine[key] / 1e6:,.0f}"
                lines.append(f"| {label} | {figures} | {ratio:.2f}× |")
    return "\n".join(lines)
