"""`model-compose pull`, `models` and `quantize`: GGUF files on this machine,
and the models a running server has loaded."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from runtime.cli_options import ComposeFiles, file_options

if TYPE_CHECKING:
    from runtime.running_server import ServerAddress


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
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON: the files and the server's models."
)
@click.option(
    "--url",
    metavar="URL",
    help="The API of a running server, base path included (what `up -d` prints, e.g. "
    "http://127.0.0.1:8080/api). Default: where the compose file's controller serves.",
)
@click.option(
    "--api-key",
    metavar="KEY",
    envvar="MODEL_COMPOSE_API_KEY",
    show_envvar=True,
    help="The server's API key. Default: the compose file's controller.api_key.",
)
@file_options
def models(as_json: bool, url: str | None, api_key: str | None, compose: ComposeFiles) -> None:
    """List the GGUF files in the Hugging Face cache (and the embedded model),
    and the models a running server has loaded, with their memory."""
    from convert.preflight import human
    from runtime.running_server import loaded_models

    address = server_address(compose, url, api_key)
    status = loaded_models(address)  # asked first: a refusal is the one line printed
    rows = cached_files()
    if as_json:
        server = {"url": address.api_url, "running": status is not None, **(status or {})}
        click.echo(json.dumps({"cached": rows, "server": server}, indent=2))
        return
    if rows:
        table = [("REPOSITORY", "FILE", "QUANT", "SIZE", "PATH")] + [
            (r["repository"], r["file"], r["quant"], human(r["size"]), r["path"]) for r in rows
        ]
        echo_table(table)
    else:
        click.echo("no GGUF files cached; fetch one with `model-compose pull owner/name`")
    click.echo()
    if status is None:
        click.echo(
            f"no model-compose server is running at {address.api_url} "
            "(start one with `model-compose up -d`)"
        )
        return
    echo_loaded(address.api_url, status)


def server_address(compose: ComposeFiles, url: str | None, api_key: str | None) -> ServerAddress:
    """`--url`; else where the compose file (-f, or ./model-compose.yml) serves;
    else the default adapter's address. `--api-key` over the file's key."""
    from runtime.config import ComposeConfig
    from runtime.errors import ModelComposeError
    from runtime.running_server import ServerAddress, address_of

    if url:
        return ServerAddress(url.rstrip("/"), api_key)
    try:
        config = compose.load().config
    except ModelComposeError:
        if compose.files:
            raise
        config = ComposeConfig()  # no usable ./model-compose.yml: the defaults
    address = address_of(config)
    return replace(address, api_key=api_key) if api_key else address


def cached_files() -> list[dict[str, Any]]:
    from convert.embedded import EMBEDDED_REPOSITORY, embedded_model_path
    from convert.fetch import cached_gguf_files

    rows: list[dict[str, Any]] = [
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
    return rows


def echo_loaded(api_url: str, status: dict[str, Any]) -> None:
    """What `ollama ps` shows: the loaded models and what each holds in memory."""
    from convert.preflight import human
    from runtime.memory_view import describe_process_memory, kv_in_use

    resident = status.get("process_memory")
    rss = (
        ": " + describe_process_memory(resident["rss"], resident["rss_anon"], resident["rss_file"])
        if resident
        else ""
    )
    click.echo(f"model-compose at {api_url}{rss}")
    if not status["models"]:
        click.echo("no model loaded yet")
        return
    table = [("NAME", "COMPONENTS", "CONTEXT", "SLOTS BUSY", "WEIGHTS", "KV CACHE", "COMPUTE")]
    for model in status["models"]:
        memory = model.get("memory")
        sizes = (
            (
                human(memory["weights"]),
                kv_in_use(memory["kv_cache_used"], memory["kv_cache"]),
                human(memory["compute"]),
            )
            if memory
            else ("-", "-", "-")
        )
        table.append(
            (
                model["name"],
                ",".join(model["components"]),
                str(model["context_length"]),
                f"{model['busy']}/{model['slots']}",
                *sizes,
            )
        )
    echo_table(table)


def echo_table(rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell, but the last (a path may be long)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]))


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
