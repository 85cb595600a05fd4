"""From the measured numbers to what people read: the markdown table, the
issue's targets (met / not met), the JSON file and the PNG chart."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

MB = 2**20
# Issue #6, item 6.
ONE_CLIENT_VS_CEILING = 0.92
FOUR_CLIENTS_VS_CEILING = 0.90
FOUR_CLIENTS_VS_SERIAL = 2.0
WARM_OVER_COLD = 0.15
RSS_SLACK = 50 * MB
# Issue 17: what the server may hold beyond the model file and its KV cache,
# and how much less than llama-server with the same slots and context.
MEMORY_SLACK = 300 * MB
VERSUS_LLAMA_SERVER = 1.5
# Above this share of the CPU used by other programs during the run, the table warns.
BUSY_MACHINE = 0.05


def row(results: dict[str, Any], system: str, clients: int) -> dict[str, Any] | None:
    rows = results["systems"].get(system, {}).get("rows", [])
    return next((r for r in rows if r["clients"] == clients), None)


def tokens_per_s(results: dict[str, Any], system: str, clients: int) -> float | None:
    found = row(results, system, clients)
    return found["tokens_per_s"] if found else None


def _ratio(
    target: str, value: float | None, reference: float | None, *, at_least: float, detail: str
) -> dict[str, Any]:
    if value is None or reference is None or reference <= 0:
        return {"target": target, "value": None, "met": None, "detail": "not measured"}
    ratio = value / reference
    return {
        "target": target,
        "value": ratio,
        "met": ratio >= at_least,
        "detail": detail.format(value=value, reference=reference),
    }


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue #6's targets, computed from this run, for our engine in-process
    and (when measured) behind the server."""
    checks = []
    engines = [s for s in ("engine", "server") if s in results["systems"]]
    for system in engines:
        where = "in-process" if system == "engine" else "server"
        checks.append(
            _ratio(
                f"1 client ({where}) ≥ {ONE_CLIENT_VS_CEILING}× ceiling@1",
                tokens_per_s(results, system, 1),
                tokens_per_s(results, "ceiling", 1),
                at_least=ONE_CLIENT_VS_CEILING,
                detail="{value:.1f} vs {reference:.1f} tok/s",
            )
        )
        checks.append(
            _ratio(
                f"4 clients ({where}) ≥ {FOUR_CLIENTS_VS_CEILING}× ceiling@4",
                tokens_per_s(results, system, 4),
                tokens_per_s(results, "ceiling", 4),
                at_least=FOUR_CLIENTS_VS_CEILING,
                detail="{value:.1f} vs {reference:.1f} tok/s",
            )
        )
        checks.append(
            _ratio(
                f"4 clients ({where}) ≥ {FOUR_CLIENTS_VS_SERIAL:g}× serial@4",
                tokens_per_s(results, system, 4),
                tokens_per_s(results, "serial", 4),
                at_least=FOUR_CLIENTS_VS_SERIAL,
                detail="{value:.1f} vs {reference:.1f} tok/s" + _ceiling_vs_serial(results),
            )
        )
    checks.append(warm_prefix_target(results))
    checks.append(rss_target(results))
    checks.extend(memory_targets(results))
    return checks


def _ceiling_vs_serial(results: dict[str, Any]) -> str:
    """What any scheduler could reach here: the ceiling's own ratio to serial@4."""
    ceiling, serial = tokens_per_s(results, "ceiling", 4), tokens_per_s(results, "serial", 4)
    if not ceiling or not serial:
        return ""
    return f"; the ceiling itself is {ceiling / serial:.2f}×"


def warm_prefix_target(results: dict[str, Any]) -> dict[str, Any]:
    target = f"warm-prefix TTFT ≤ {WARM_OVER_COLD}× cold"
    warm = results["systems"].get("engine", {}).get("warm_prefix")
    if not warm or warm.get("ratio") is None:
        return {"target": target, "value": None, "met": None, "detail": "not measured"}
    cold_ms, warm_ms = warm["cold"]["ttft_s"] * 1000, warm["warm"]["ttft_s"] * 1000
    return {
        "target": target,
        "value": warm["ratio"],
        "met": warm["ratio"] <= WARM_OVER_COLD,
        "detail": f"{warm_ms:.0f} ms warm vs {cold_ms:.0f} ms cold; prompt "
        f"{warm['warm']['prompt_tokens']} tokens, {warm['warm']['cached_tokens']} reused",
    }


def _rss(memory: dict[str, Any]) -> str:
    """ "3,854 (2,010 + 1,844)": resident MB, anonymous + file-backed."""
    if not memory.get("rss_bytes"):
        return "–"
    total = f"{memory['rss_bytes'] / MB:,.0f}"
    if "rss_anon_bytes" not in memory:  # results written before the split
        return total
    return f"{total} ({memory['rss_anon_bytes'] / MB:,.0f} + {memory['rss_file_bytes'] / MB:,.0f})"


def rss_target(results: dict[str, Any]) -> dict[str, Any]:
    target = "RSS 4 slots ≤ RSS 1 slot + KV difference + 50 MB"
    slots, kv = results.get("slots"), results.get("kv_cache_bytes")
    if not slots or not kv:
        return {"target": target, "value": None, "met": None, "detail": "not measured"}
    one, four = slots["1"]["rss_bytes"], slots["4"]["rss_bytes"]
    kv_diff = kv["4"] - kv["1"]
    allowed = one + kv_diff + RSS_SLACK
    return {
        "target": target,
        "value": four / allowed if allowed else None,
        "met": four <= allowed,
        "detail": f"{four / MB:.0f} MB vs {one / MB:.0f} + {kv_diff / MB:.0f} + 50 = "
        f"{allowed / MB:.0f} MB; engines: {_engine_name(slots['1'])}, "
        f"{_engine_name(slots['4'])}",
    }


def memory_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 17's: our server's RSS after its runs at most the model file,
    the KV cache allocated for every slot and 300 MB; llama-server's, with
    the same slots and context, at least 1.5× ours."""
    server = results["systems"].get("server")
    if not server or not server.get("rss_bytes"):
        return []
    from convert.metadata import read_gguf_info
    from convert.preflight import estimate, shape_of

    settings = results["settings"]
    shape = shape_of(read_gguf_info(Path(settings["model"])))
    file_size = Path(settings["model"]).stat().st_size
    kv = (
        estimate(shape, settings["n_ctx"], n_parallel=settings["parallel"]).kv_cache if shape else 0
    )
    allowed = file_size + kv + MEMORY_SLACK
    checks = [
        {
            "target": "server RSS ≤ model file + KV allocated + 300 MB",
            "value": server["rss_bytes"] / allowed,
            "met": server["rss_bytes"] <= allowed,
            "detail": f"{server['rss_bytes'] / MB:,.0f} MB vs {file_size / MB:,.0f} + "
            f"{kv / MB:,.0f} + 300 = {allowed / MB:,.0f} MB",
        }
    ]
    theirs = results["systems"].get("llama-server")
    if theirs and theirs.get("rss_bytes"):
        ratio = theirs["rss_bytes"] / server["rss_bytes"]
        checks.append(
            {
                "target": f"llama-server RSS ≥ {VERSUS_LLAMA_SERVER}× our server's",
                "value": ratio,
                "met": ratio >= VERSUS_LLAMA_SERVER,
                "detail": f"{theirs['rss_bytes'] / MB:,.0f} MB vs "
                f"{server['rss_bytes'] / MB:,.0f} MB",
            }
        )
    return checks


def versus_llama_server(results: dict[str, Any]) -> dict[str, Any] | None:
    """llama.cpp's llama-server against our server, both measured in this run:
    RSS ratio and tok/s ratio per client count, each llama-server ÷ ours."""
    ours, theirs = results["systems"].get("server"), results["systems"].get("llama-server")
    if not ours or not theirs:
        return None
    rss = theirs["rss_bytes"] / ours["rss_bytes"] if ours.get("rss_bytes") else None
    speed = {}
    for clients in results["settings"]["clients"]:
        mine = tokens_per_s(results, "server", clients)
        other = tokens_per_s(results, "llama-server", clients)
        speed[str(clients)] = other / mine if mine and other is not None else None
    return {"rss_ratio": rss, "tokens_per_s_ratio": speed}


def _versus_line(versus: dict[str, Any]) -> str:
    def ratio(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}×"

    speeds = ", ".join(
        f"{clients} client(s) {ratio(value)}"
        for clients, value in versus["tokens_per_s_ratio"].items()
    )
    return f"llama-server ÷ our server: RSS {ratio(versus['rss_ratio'])}; total tok/s {speeds}."


def _engine_name(slot_result: dict[str, Any]) -> str:
    return slot_result.get("engine", {}).get("class", "?").rsplit(".", 1)[-1]


def _ms(seconds: float) -> str:
    return "–" if seconds is None or math.isnan(seconds) else f"{seconds * 1000:,.0f}"


def markdown(results: dict[str, Any]) -> str:
    settings, machine = results["settings"], results["machine"]
    lines = [
        f"Model `{Path(settings['model']).name}`, n_ctx {settings['n_ctx']} per sequence, "
        f"n_threads {settings['n_threads']}, greedy, max_tokens {settings['max_tokens']}, "
        f"{settings['repetitions']} repetition(s); {machine['cpu_count']} CPUs "
        f"({machine['cpu_model'] or 'unknown CPU'}), llama-cpp-python "
        f"{machine['llama_cpp_python']}.",
        "",
        "| system | clients | total tok/s | TTFT p50 ms | TTFT p95 ms "
        "| RSS MB (anon + file) | tokens/request |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for system in results["systems"].values():
        rss = _rss(system)
        for r in system["rows"]:
            low, high = r["completion_tokens_min"], r["completion_tokens_max"]
            tokens = str(low) if low == high else f"{low}–{high}"
            lines.append(
                f"| {system['label']} | {r['clients']} | {r['tokens_per_s']:.1f} | "
                f"{_ms(r['ttft_p50_s'])} | {_ms(r['ttft_p95_s'])} | {rss} | {tokens} |"
            )
    llama_server = results["systems"].get("llama-server")
    if llama_server:
        lines += [
            "",
            f"llama-server: {llama_server['version']}; `{shlex.join(llama_server['command'])}`.",
        ]
    versus = results.get("versus_llama_server")
    if versus:
        lines += ["", _versus_line(versus)]
    engine = results["systems"].get("engine", {}).get("engine")
    if engine:
        lines += ["", f"Our engine: `{engine['class']}`."]
    constrained = results["systems"].get("engine", {}).get("constrained")
    if constrained:
        from scripts.benchmark.constrained import markdown as constrained_table

        lines += ["", *constrained_table(constrained)]
    lines += ["", "| target (issue #6) | measured | met |", "| --- | --- | --- |"]
    for check in results["targets"]:
        value = "–" if check["value"] is None else f"{check['value']:.2f}"
        met = {True: "met", False: "**not met**", None: "not measured"}[check["met"]]
        lines.append(f"| {check['target']} | {value} ({check['detail']}) | {met} |")
    busy = [
        f"{system['label']} {system['other_load']['share']:.0%}"
        for system in results["systems"].values()
        if ((system.get("other_load") or {}).get("share") or 0) > BUSY_MACHINE
    ]
    if busy:
        lines += [
            "",
            "**Warning**: other programs used the CPU while these were measured (share of "
            f"the machine): {', '.join(busy)}. Those numbers are not trustworthy; run it "
            "again on an idle machine.",
        ]
    lines += [
        "",
        "Definitions: "
        + "; ".join(f"{key}: {text}" for key, text in results["definitions"].items()),
    ]
    return "\n".join(lines)


def write(results: dict[str, Any], out: Path, chart: bool = True) -> list[Path]:
    """Write results.json (and chart.png when matplotlib is there) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.json"]
    written[0].write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(markdown(results) + "\n")
    written.append(out / "results.md")
    if chart:
        png = write_chart(results, out / "chart.png")
        if png is not None:
            written.append(png)
    return written


def write_chart(results: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for system in results["systems"].values():
        xs = [r["clients"] for r in system["rows"]]
        axes.plot(
            xs, [r["tokens_per_s"] for r in system["rows"]], marker="o", label=system["label"]
        )
    clients = results["settings"]["clients"]
    axes.set_xscale("log", base=2)
    axes.set_xticks(clients, [str(n) for n in clients])
    axes.set_xlabel("concurrent clients")
    axes.set_ylabel("total decode tokens/s")
    axes.set_ylim(bottom=0)
    axes.set_title(
        f"{Path(results['settings']['model']).name}, "
        f"{results['settings']['n_threads']} thread(s), "
        f"max_tokens {results['settings']['max_tokens']}"
    )
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
