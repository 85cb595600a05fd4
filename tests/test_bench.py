"""scripts/bench cannot rot: its core runs end to end in a smoke setting (one
client, four tokens, no server) and writes the JSON the README's table comes
from. Speed is not asserted — this is not the benchmark, only its plumbing."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest

from scripts.benchmark.__main__ import main, parser, settings_from
from scripts.benchmark.report import markdown, targets, versus_llama_server, write
from scripts.benchmark.run import run_benchmark
from scripts.benchmark.stats import percentile


def test_percentiles_interpolate_like_numpy() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == 3.85
    assert percentile([5.0], 95) == 5.0


def test_the_quick_run_writes_every_number_the_table_needs(
    embedded_model_path: Path, tmp_path: Path
) -> None:
    args = parser().parse_args(
        [
            "--quick",
            "--clients",
            "1",
            "--max-tokens",
            "4",
            "--skip-server",
            "--system-prompt-tokens",
            "100",
            "--n-ctx",
            "512",
            "--wait-idle",
            "0",
        ]
    )
    settings = settings_from(args)
    settings.slot_max_tokens = 2
    results = run_benchmark(settings)
    write(results, tmp_path, chart=False)

    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved) >= {
        "settings",
        "machine",
        "definitions",
        "systems",
        "slots",
        "kv_cache_bytes",
        "targets",
    }
    assert set(saved["machine"]) >= {"cpu_count", "model", "n_threads", "llama_cpp_python"}
    assert set(saved["systems"]) == {"ceiling", "serial", "engine"}
    for system in saved["systems"].values():
        (row,) = system["rows"]
        assert row["clients"] == 1
        assert set(row) >= {"tokens_per_s", "ttft_p50_s", "ttft_p95_s", "runs"}
        assert 1 <= row["completion_tokens_max"] <= 4
        assert system["rss_bytes"] > 0
    (constrained,) = saved["systems"]["engine"]["constrained"]["rows"]
    assert constrained["clients"] == 1 and constrained["ms_per_token"] is not None
    assert constrained["schema"]["completion_tokens_min"] == 4  # the schema never ends early
    warm = saved["systems"]["engine"]["warm_prefix"]
    assert warm["cold"]["prompt_tokens"] >= 100 and warm["ratio"] > 0
    assert set(saved["slots"]) == {"1", "4"}
    assert saved["kv_cache_bytes"]["4"] > saved["kv_cache_bytes"]["1"]
    # Four-client targets are "not measured" with one client; the others have a verdict.
    verdicts = {check["target"]: check["met"] for check in saved["targets"]}
    assert any("4 clients" in name and met is None for name, met in verdicts.items())
    assert all(met is not None for name, met in verdicts.items() if "4 clients" not in name)
    table = (tmp_path / "results.md").read_text()
    assert "| raw ceiling (batched llama_decode) | 1 |" in table
    assert "| story as JSON | 1 |" in table
    assert table == markdown(saved) + "\n"
    assert targets(saved) == saved["targets"]


def test_client_counts_are_checked(capsys) -> None:
    for bad in ("0", "a,b", ""):
        try:
            main(["--clients", bad, "--out", "/nonexistent"])
        except SystemExit as exit:
            assert exit.code == 2
        else:
            raise AssertionError(f"--clients {bad!r} was accepted")
    assert "--clients" in capsys.readouterr().err


def test_llama_server_is_started_with_our_servers_model_slots_context_threads_and_batch(
    tmp_path: Path,
) -> None:
    import yaml

    from scripts.benchmark.llama_server import command_line
    from scripts.benchmark.run import Settings
    from scripts.benchmark.server_bench import compose_file

    settings = asdict(Settings(model=str(tmp_path / "m.gguf"), n_ctx=1024, n_threads=3))
    settings["parallel"] = 4
    component = yaml.safe_load(compose_file(settings, 8123))["component"]
    argv = command_line("/bin/llama-server", settings, 8123)
    options = dict(zip(argv[1::2], argv[2::2], strict=False))

    assert argv[0] == "/bin/llama-server"
    assert options["-m"] == component["model"]
    assert int(options["-np"]) == component["parallel"] == 4
    # llama-server's -c is every slot's context together; ours is per slot.
    assert int(options["-c"]) == component["n_ctx"] * component["parallel"] == 4096
    assert int(options["-t"]) == component["n_threads"] == 3
    assert int(options["-b"]) == component["n_batch"]
    assert (options["--host"], options["--port"]) == ("127.0.0.1", "8123")
    assert "--no-webui" in argv


def test_the_report_sets_llama_server_against_our_server() -> None:
    def system(label: str, rss: int, speeds: dict[int, float]) -> dict[str, object]:
        rows = [{"clients": n, "tokens_per_s": s} for n, s in speeds.items()]
        return {"label": label, "rows": rows, "rss_bytes": rss}

    results = {
        "settings": {"clients": [1, 2]},
        "systems": {
            "server": system("ours", 200, {1: 50.0, 2: 80.0}),
            "llama-server": system("theirs", 150, {1: 55.0, 2: 100.0}),
        },
    }
    assert versus_llama_server(results) == {
        "rss_ratio": 0.75,
        "tokens_per_s_ratio": {"1": 1.1, "2": 1.25},
    }
    del results["systems"]["llama-server"]
    assert versus_llama_server(results) is None


def test_llama_server_takes_a_given_binary(embedded_model_path: Path, tmp_path: Path) -> None:
    binary = tmp_path / "llama-server"
    binary.write_text("")
    args = parser().parse_args(["--llama-server", str(binary), "--skip-slots"])
    settings = settings_from(args)
    assert settings.llama_server == str(binary) and settings.skip_slots
    assert parser().parse_args([]).llama_server is None
    assert parser().parse_args(["--llama-server"]).llama_server == ""  # the cached build
    try:
        settings_from(parser().parse_args(["--llama-server", str(tmp_path / "none")]))
    except SystemExit as exit:
        assert "no such file" in str(exit.code)
    else:
        raise AssertionError("a missing --llama-server PATH was accepted")


@pytest.mark.queue
def test_the_queue_cost_runs_end_to_end(embedded_model_path: Path, tmp_path: Path) -> None:
    """`scripts/bench --queue` on a real redis-server: both ways, both shapes."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/setup --with-redis)")
    args = ["--queue", "--quick", "--clients", "1", "--max-tokens", "4", "--n-ctx", "512"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "queue.json").read_text())
    for shape in ("plain", "streamed"):
        for way in ("direct", "queue"):
            assert saved[shape][way]["tokens_per_s"] > 0
            assert saved[shape][way]["latency_p50_ms"] > 0
    assert "Targets (issue 18)" in (tmp_path / "queue.md").read_text()
