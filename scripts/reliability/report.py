"""From outcomes to what people read: latency and TTFT percentiles,
throughput, the checks, as markdown and as JSON files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from scripts.benchmark.stats import percentile
from scripts.reliability.checks import Check
from scripts.reliability.clients import Outcome

MB = 2**20
# Above this share of the CPU used by other programs during the run, say so.
BUSY_MACHINE = 0.05


def spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None}
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "max": max(values)}


def figures(outcomes: list[Outcome], wall_s: float) -> dict[str, Any]:
    """Latency and TTFT of the requests that finished, throughput of them all."""
    answered = [o for o in outcomes if o.answered]
    tokens = sum(o.completion_tokens or 0 for o in outcomes)
    return {
        "requests": len(outcomes),
        "by_endpoint": dict(Counter(o.endpoint for o in outcomes)),
        "answered": len(answered),
        "cancelled": dict(Counter(o.cancel for o in outcomes if o.cancel)),
        "refusals": sum(o.refusals for o in outcomes),
        "problems": sum(1 for o in outcomes if o.problem),
        "latency_s": spread([o.latency_s for o in answered if o.latency_s is not None]),
        "ttft_s": spread([o.ttft_s for o in answered if o.ttft_s is not None]),
        "completion_tokens": tokens,
        "wall_s": wall_s,
        "tokens_per_s": tokens / wall_s if wall_s > 0 else 0.0,
    }


def _s(spread: dict[str, float | None]) -> str:
    if spread["p50"] is None:
        return "–"
    return f"{spread['p50']:.2f} / {spread['p95']:.2f} / {spread['max']:.2f}"


def figure_rows(found: dict[str, Any]) -> list[str]:
    endpoints = ", ".join(f"{n} {e}" for e, n in sorted(found["by_endpoint"].items()))
    rows = [
        f"| requests | {found['requests']} ({endpoints}) |",
        f"| finished with their whole answer | {found['answered']} |",
    ]
    if found["cancelled"]:
        ways = ", ".join(f"{n} {how}" for how, n in sorted(found["cancelled"].items()))
        rows.append(f"| cancelled on purpose | {sum(found['cancelled'].values())} ({ways}) |")
    rows += [
        f"| refused with 503 + Retry-After (then retried) | {found['refusals']} |",
        f"| latency p50 / p95 / max (s) | {_s(found['latency_s'])} |",
        f"| time to first token p50 / p95 / max (s) | {_s(found['ttft_s'])} |",
        f"| completion tokens/s, all clients | {found['tokens_per_s']:.1f} |",
        f"| wall time (s) | {found['wall_s']:.1f} |",
    ]
    return rows


def markdown(results: dict[str, Any]) -> str:
    settings, machine = results["settings"], results["machine"]
    lines = [
        f"## {results['title']}",
        "",
        f"Model `{Path(settings['model']).name}`, {settings['parallel']} slots, "
        f"max_queue {settings['max_queue']}, greedy, max_tokens {settings['max_tokens']}; "
        f"{machine['cpu_count']} CPUs ({machine['cpu_model'] or 'unknown CPU'}), "
        f"llama-cpp-python {machine['llama_cpp_python']}.",
        "",
        "| figure | value |",
        "| --- | --- |",
        *figure_rows(results["figures"]),
    ]
    phases = ", ".join(f"{name} {s:.1f}" for name, s in results.get("phases_s", {}).items())
    if phases:
        lines.append(f"| phases (s) | {phases} |")
    if machine.get("server_cpu_s") is not None:
        lines.append(f"| server CPU time, whole run (s) | {machine['server_cpu_s']:.1f} |")
    for label, value in results.get("memory", {}).items():
        lines.append(f"| {label} | {value / MB:.1f} MB |")
    lines += ["", "| check | result |", "| --- | --- |"]
    for check in results["checks"]:
        verdict = "pass" if check["ok"] else "**FAIL**"
        lines.append(f"| {check['name']} | {verdict}: {check['detail']} |")
    share = (machine.get("other_load") or {}).get("share")
    if share is not None and share > BUSY_MACHINE:
        lines += [
            "",
            f"Other programs used {share:.0%} of the CPU during this run: the timings are "
            "not representative (the checks still hold).",
        ]
    return "\n".join(lines)


def passed(checks: list[Check]) -> bool:
    return all(check.ok for check in checks)


def write(results: dict[str, Any], out: Path, name: str) -> list[Path]:
    """`out/<name>.json` (everything, every request) and `out/<name>.md`."""
    out.mkdir(parents=True, exist_ok=True)
    data, text = out / f"{name}.json", out / f"{name}.md"
    data.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    text.write_text(markdown(results) + "\n")
    return [data, text]
