"""What the CLI's commands share: `-f`, `--env-file` and `-e`, gathered into
one `ComposeFiles` value, and `-v`, kept where `main` can read it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from runtime.config import LoadedConfig, load_config


@dataclass
class CliSettings:
    """The group's own options, filled by its callback (click's `obj`)."""

    verbose: bool = False


@dataclass(frozen=True)
class ComposeFiles:
    """The compose files a command reads and the environment they see."""

    files: tuple[str, ...] = ()
    env_file: str | None = None
    env: tuple[str, ...] = ()

    def env_pairs(self) -> dict[str, str]:
        pairs: dict[str, str] = {}
        for value in self.env:
            key, sep, val = value.partition("=")
            if not sep or not key:
                raise click.BadParameter(f"expected KEY=VALUE, got {value!r}", param_hint="-e")
            pairs[key] = val
        return pairs

    def load(self) -> LoadedConfig:
        """Load the files, printing their warnings on stderr."""
        loaded = load_config(self.files, env_file=self.env_file, env=self.env_pairs())
        for warning in loaded.warnings:
            click.echo(f"warning: {warning}", err=True)
        return loaded


def file_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """-f, --env-file and -e, handed to the command as one `compose` argument."""

    @functools.wraps(command)
    def with_compose(
        *args: Any, files: tuple[str, ...], env_file: str | None, env: tuple[str, ...], **kw: Any
    ) -> Any:
        return command(*args, compose=ComposeFiles(files, env_file, env), **kw)

    decorated: Callable[..., Any] = click.option(
        "-e",
        "--env",
        "env",
        multiple=True,
        metavar="KEY=VAL",
        help="Set an environment variable for ${env.KEY}.",
    )(with_compose)
    decorated = click.option(
        "--env-file",
        type=click.Path(dir_okay=False),
        help="Read ${env.KEY} values from this file (default: .env).",
    )(decorated)
    return click.option(
        "-f",
        "--file",
        "files",
        multiple=True,
        metavar="FILE",
        help="Compose file or folder (repeatable; later files merge over"
        " earlier ones). Default: ./model-compose.yml.",
    )(decorated)
