"""scripts/bench cannot rot: its core runs end to end in a smoke setting (one
client, four tokens, no server) and writes the JSON the README's table comes
from. Speed is not asserted — this is not the benchmark, only its plumbing."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.benchmark.__main__ import main, parser, settings_from
from scripts.benchmark.report import markdown, targets, write
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
