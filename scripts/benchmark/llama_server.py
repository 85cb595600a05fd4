"""llama.cpp's own llama-server as one more measured system: the issue's
targets compare our server with it "with the same slots and context,
measured in the same run". It is built from the llama.cpp our wheel vendors,
with the wheel's CMake arguments (scripts/build-llama-server), started on a
free loopback port with the model, slots, context, threads and batch of our
server's compose file (server_bench.compose_file), and driven by the same
streaming /v1/completions clients; its RSS is read the same way after the
runs. Everything else is llama-server's defaults: those are what we compare
with (a KV stream per slot since -np is given, f16 KV cache, flash attention
auto, the model mmapped, its 8 GiB host-memory prompt cache).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scripts.benchmark.server_bench import measure
from scripts.benchmark.server_process import ServerProcess
from scripts.llama_build.llama_server import build_llama_server, cached_binary, describe


def command_line(binary: str, settings: dict[str, Any], port: int) -> list[str]:
    """llama-server serving what compose_file(settings, port) serves."""
    parallel = settings["parallel"]
    return [
        binary,
        "-m",
        settings["model"],
        "-np",
        str(parallel),
        # llama-server's -c is the whole KV cache, split evenly over the slots;
        # our n_ctx is per slot.
        "-c",
        str(parallel * settings["n_ctx"]),
        "-t",
        str(settings["n_threads"]),
        # Our engine prefills with every CPU (runtime/engine/llama/backend.py,
        # n_threads_batch); llama-server's default would be -t.
        "-tb",
        str(os.cpu_count() or 1),
        "-b",
        str(settings["n_batch"]),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-webui",
    ]


def default_binary(say: Callable[[str], None]) -> Path:
    """The llama-server scripts/build-llama-server keeps; built now if missing."""
    found = cached_binary()
    if found is not None:
        return found
    say("no llama-server built yet: building it as scripts/build-llama-server does (minutes)")
    return build_llama_server(tell=say)


def llama_server_job(settings: dict[str, Any]) -> dict[str, Any]:
    binary = settings["llama_server"]
    server = ServerProcess(
        lambda port, _folder: command_line(binary, settings, port), name="llama-server"
    )
    built = describe(Path(binary))
    return {**measure(server, settings), "command": server.command, "version": built}
