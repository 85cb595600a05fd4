"""The `model-compose` command.

User errors end as one line on stderr and exit code 2; runtime failures as one
line and exit code 1. `-v` adds the traceback.
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from runtime.cli_models import COMMANDS as MODEL_COMMANDS
from runtime.config import LoadedConfig, load_config
from runtime.engine.types import FinishReason, GenerationResult
from runtime.errors import ConfigError, ModelComposeError, UserError
from runtime.workflow import RunContext, workflow_inputs


def _env_pairs(values: tuple[str, ...]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}", param_hint="-e")
        pairs[key] = val
    return pairs


def file_options(command: Any) -> Any:
    """-f, --env-file and -e, shared by every command that loads a compose file."""
    command = click.option(
        "-e",
        "--env",
        "env",
        multiple=True,
        metavar="KEY=VAL",
        help="Set an environment variable for ${env.KEY}.",
    )(command)
    command = click.option(
        "--env-file",
        type=click.Path(dir_okay=False),
        help="Read ${env.KEY} values from this file (default: .env).",
    )(command)
    return click.option(
        "-f",
        "--file",
        "files",
        multiple=True,
        metavar="FILE",
        help="Compose file or folder (repeatable; later files merge over"
        " earlier ones). Default: ./model-compose.yml.",
    )(command)


def load(files: tuple[str, ...], env_file: str | None, env: tuple[str, ...]) -> LoadedConfig:
    loaded = load_config(files, env_file=env_file, env=_env_pairs(env))
    for warning in loaded.warnings:
        click.echo(f"warning: {warning}", err=True)
    return loaded


def parse_input(value: str | None) -> Any:
    if value is None:
        return {}
    source = "--input"
    if value.startswith("@"):
        path = Path(value[1:])
        source = str(path)
        try:
            value = path.read_text(encoding="utf-8")
        except OSError as error:
            raise UserError(f"cannot read the input file {path}: {error.strerror}") from None
    try:
        data = json.loads(value)
    except json.JSONDecodeError as error:
        raise UserError(f"{source} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise UserError(f"{source} must be a JSON object, got {type(data).__name__}")
    return data


def format_output(output: Any) -> str:
    if isinstance(output, str):
        return output
    return json.dumps(output, ensure_ascii=False, indent=2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and llama.cpp details.")
@click.version_option(package_name="model-compose-llamacpp", prog_name="model-compose")
def cli(verbose: bool) -> None:
    """Run model-compose workflows on GGUF models with llama.cpp."""


class TerminalStream:
    """Prints streamed text as it comes, when the action streams and stdout is
    a terminal (piped output stays clean, machine-readable)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.text = ""

    def on_delta(self, job_id: str, text: str, streaming: bool) -> None:
        if self.enabled and streaming:
            self.text += text
            sys.stdout.write(text)
            sys.stdout.flush()

    def on_result(self, job_id: str, result: GenerationResult) -> None:
        # Say why an answer was cut short, when the limit was not the user's own.
        if result.finish_reason == FinishReason.LENGTH and result.detail:
            click.echo(f"{chr(10) if self.text else ''}note: {result.detail}", err=True)


async def _run(
    loaded: LoadedConfig, workflow_id: str | None, input: Any, stream: TerminalStream
) -> Any:
    from runtime.engine import ModelPool
    from runtime.tasks.components import ModelComponents
    from runtime.workflow import WorkflowRunner

    pool = ModelPool()
    show_status = sys.stderr.isatty()

    def status(message: str) -> None:
        if show_status:
            click.echo(f"{message}…", err=True)

    try:
        components = ModelComponents(loaded.config, pool, status)
        runner = WorkflowRunner(loaded.config, components)
        runner.workflow(workflow_id)  # unknown workflow: fail before loading a model
        return await runner.run(workflow_id, input, RunContext(listener=stream))
    finally:
        await pool.close()


@cli.command()
@click.argument("workflow_id", required=False)
@click.option(
    "-i",
    "--input",
    "input_",
    metavar="JSON|@FILE",
    help="The workflow input: a JSON object, or @file.json.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the output to FILE.")
@file_options
def run(
    workflow_id: str | None,
    input_: str | None,
    output: str | None,
    files: tuple[str, ...],
    env_file: str | None,
    env: tuple[str, ...],
) -> None:
    """Run a workflow once, in this process, and print its output."""
    loaded = load(files, env_file, env)
    data = parse_input(input_)
    stream = TerminalStream(enabled=sys.stdout.isatty() and output is None)
    result = asyncio.run(_run(loaded, workflow_id, data, stream))
    text = format_output(result)
    if output is not None:
        Path(output).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    elif stream.text and stream.text.strip() in _strings(result):
        click.echo()  # the answer is already on screen
    else:
        click.echo(text)


def _strings(value: Any) -> list[str]:
    """The string values of an output, to tell whether streaming showed it all."""
    if isinstance(value, str):
        return [value.strip()]
    if isinstance(value, dict) and len(value) == 1:
        return _strings(next(iter(value.values())))
    return []


@cli.command()
@file_options
def validate(files: tuple[str, ...], env_file: str | None, env: tuple[str, ...]) -> None:
    """Check a compose file and print every problem, or its workflows' inputs."""
    try:
        loaded = load(files, env_file, env)
    except ConfigError as error:
        for problem in error.problems:
            click.echo(f"error: {problem}", err=True)
        count = len(error.problems)
        click.echo(f"{count} problem{'s' if count != 1 else ''} found", err=True)
        sys.exit(2)
    config = loaded.config
    click.echo(f"{', '.join(str(f) for f in loaded.files)}: ok")
    for workflow in config.workflows:
        title = f" ({workflow.title})" if workflow.title else ""
        click.echo(f"workflow {workflow.id}{title}")
        for field in workflow_inputs(config, workflow):
            flags = (
                "required"
                if field.required
                else "optional"
                if field.default is None
                else f"default: {json.dumps(field.default, ensure_ascii=False)}"
            )
            click.echo(f"  input {field.name}: {field.type}, {flags}")
    for component in config.components:
        model = (
            component.model
            if isinstance(component.model, str)
            else (component.model.path or component.model.repository)
        )
        click.echo(f"component {component.id}: {component.task} on {model}")


@cli.command()
@click.option("-d", "--detach", is_flag=True, help="Run in the background (stop it with `down`).")
@click.option("--host", help="Listen on this address (default: the adapter's, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Listen on this port (default 8080).")
@file_options
def up(
    detach: bool,
    host: str | None,
    port: int | None,
    files: tuple[str, ...],
    env_file: str | None,
    env: tuple[str, ...],
) -> None:
    """Load the models and serve the API (and the OpenAI-compatible API)."""
    from runtime.server import daemon
    from runtime.server.serve import endpoint, serve

    loaded = load(files, env_file, env)
    if not detach:
        code = serve(loaded.config, host, port, lambda line: click.echo(line, err=True))
        sys.exit(code)
    argv = [arg for f in loaded.files for arg in ("-f", str(f))]
    argv += ["--env-file", env_file] if env_file else []
    argv += [arg for pair in env for arg in ("-e", pair)]
    argv += ["--host", host] if host else []
    argv += ["--port", str(port)] if port else []
    real_host, real_port, base_path = endpoint(loaded.config, host, port)
    local = "127.0.0.1" if real_host in ("0.0.0.0", "::") else real_host
    url = f"http://{local}:{real_port}"
    pid, log = daemon.start_detached(loaded.files[0], argv, f"{url}/health")
    click.echo(
        f"model-compose is running in the background (pid {pid}): API at "
        f"{url}{base_path}, OpenAI-compatible API at {url}/v1; log: {log}; "
        "stop it with `model-compose down`"
    )


@cli.command()
@file_options
def down(files: tuple[str, ...], env_file: str | None, env: tuple[str, ...]) -> None:
    """Stop a server started with `up -d` for this compose file."""
    from runtime.config.files import find_compose_files
    from runtime.config.units import parse_duration
    from runtime.server import daemon

    compose_file = find_compose_files(files)[0]
    try:
        timeout = parse_duration(load(files, env_file, env).config.controller.shutdown_timeout)
    except ModelComposeError:
        timeout = 30.0  # the file changed since `up`: still stop the server
    pid = daemon.stop(compose_file, timeout + 10)
    click.echo(f"stopped model-compose (pid {pid})")


for command in MODEL_COMMANDS:
    cli.add_command(command)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        # Click's usage errors are several lines; keep the CLI's one-line rule.
        click.echo(f"error: {error.format_message()}", err=True)
        sys.exit(error.exit_code)
    except ConfigError as error:
        _fail(
            error,
            str(error.problems[0])
            + (
                f" (and {len(error.problems) - 1} more: run `model-compose validate`)"
                if len(error.problems) > 1
                else ""
            ),
        )
    except ModelComposeError as error:
        _fail(error, str(error))
    except Exception as error:  # a bug: still one line, traceback with -v
        _fail(error, f"internal error: {type(error).__name__}: {error}")


def _fail(error: BaseException, message: str) -> None:
    # main() handles errors after click has returned, so read the flag itself.
    if any(arg in ("-v", "--verbose") for arg in sys.argv[1:]):
        traceback.print_exception(error)
    click.echo(f"error: {message}", err=True)
    sys.exit(getattr(error, "exit_code", 1))


if __name__ == "__main__":
    main()
