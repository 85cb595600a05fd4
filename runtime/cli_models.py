"""`model-compose pull`, `models` and `quantize`: GGUF files on this machine."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


def say(message: str) -> None:
    click.echo(message, err=True)


@click.command()
@click.argument("model")
@click.option("--revision", help="A branch, tag or commit of the repository.")
def pull(model: str, revision: str | None) -> None:
    """Download a GGUF build of MODEL into the Hugging Face cache.

    MODEL is a Hugging Face id, optionally with a quant: owner/name or
    owner/name:Q8_0. A transformers repository (like HuggingFaceTB/SmolLM3-3B)
    is mapped to a GGUF build of the same model.
    """
    from dataclasses import replace

    from convert.embedded import EMBEDDED_REPOSITORY, embedded_model_path
    from convert.fetch import fetch
    from convert.metadata import read_gguf_info
    from convert.preflight import human
    from convert.reference import parse_model_reference
    from convert.resolve import resolve

    try:
        reference = parse_model_reference(model)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="MODEL") from None
    if reference.path is not None:
        raise click.BadParameter(
            f"{model} is a local path; pull takes a Hugging Face id", param_hint="MODEL"
        )
    if revision:
        reference = replace(reference, revision=revision)
    embedded = embedded_model_path()
    if (
        embedded is not None
        and (reference.repository or "").lower() == EMBEDDED_REPOSITORY.lower()
        and not reference.quant
        and not revision
    ):
        say(f"{EMBEDDED_REPOSITORY} is the embedded model: nothing to download")
        click.echo(f"{embedded} ({human(embedded.stat().st_size)}, Q4_1)")
        return
    resolution = resolve(reference)
    say(resolution.reason)
    path = fetch(resolution, progress=True)
    info = read_gguf_info(path)
    click.echo(f"{path} ({human(info.file_size)}, {info.quantization or 'unknown quant'})")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def models(as_json: bool) -> None:
    """List the GGUF files in the Hugging Face cache (and the embedded model)."""
    from convert.embedded import EMBEDDED_REPOSITORY, embedded_model_path
    from convert.fetch import cached_gguf_files
    from convert.preflight import human

    rows = [
        {
            "repository": f.repository,
            "file": f.filename,
            "quant": f.quant or "",
            "size": f.size,
            "path": str(f.path),
        }
        for f in cached_gguf_files()
    ]
    embedded = embedded_model_path()
    if embedded is not None:
        rows.insert(
            0,
            {
                "repository": f"{EMBEDDED_REPOSITORY} (embedded)",
                "file": embedded.name,
                "quant": "Q4_1",
                "size": embedded.stat().st_size,
                "path": str(embedded),
            },
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no GGUF files cached; fetch one with `model-compose pull owner/name`")
        return
    table = [("REPOSITORY", "FILE", "QUANT", "SIZE", "PATH")] + [
        (r["repository"], r["file"], r["quant"], human(r["size"]), r["path"]) for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + "  "
            + row[4]
        )


@click.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("target", type=click.Path(dir_okay=False))
@click.argument("quant")
@click.option(
    "--allow-requantize",
    is_flag=True,
    help="Quantize a file that is already quantized (loses more quality).",
)
@click.option("--threads", type=click.IntRange(1), help="Threads to use (default: all).")
def quantize(
    source: str, target: str, quant: str, allow_requantize: bool, threads: int | None
) -> None:
    """Quantize the GGUF file SOURCE to QUANT (e.g. Q4_K_M) as TARGET, with llama.cpp."""
    from convert.preflight import human
    from convert.quantize import quantize as run_quantize

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            click.echo(f"\rquantizing: tensor {done}/{total}", err=True, nl=done == total)

    info = run_quantize(
        Path(source),
        Path(target),
        quant,
        allow_requantize=allow_requantize,
        threads=threads,
        progress=progress,
    )
    click.echo(f"{target} ({human(info.file_size)}, {info.quantization})")


COMMANDS = (pull, models, quantize)
