"""The `model-compose` command.

User errors end as one line on stderr and exit code 2; runtime failures as one
line and exit code 1. `-v` adds the traceback.
"""

from __future__ import annotations

import json
import sys
import traceback

import click

from runtime.cli_models import COMMANDS as MODEL_COMMANDS
from runtime.cli_options import CliSettings, ComposeFiles, file_options
from runtime.cli_run import run
from runtime.config.schema import ModelComponent
from runtime.errors import ConfigError, ModelComposeError
from runtime.workflow import workflow_inputs


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and llama.cpp details.")
@click.version_option(package_name="model-compose-llamacpp", prog_name="model-compose")
@click.pass_obj
def cli(settings: CliSettings, verbose: bool) -> None:
    """Run model-compose workflows on GGUF models with llama.cpp."""
    settings.verbose = verbose


@cli.command()
@file_options
def validate(compose: ComposeFiles) -> None:
    """Check a compose file and print every problem, or its workflows' inputs."""
    try:
        loaded = compose.load()
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
        if isinstance(component, ModelComponent):
            click.echo(f"component {component.id}: {component.task} on {component.model_name}")
        else:
            runs = ", ".join(action.workflow for action in component.actions)
            click.echo(f"component {component.id}: workflow {runs}")


@cli.command()
@click.option("-d", "--detach", is_flag=True, help="Run in the background (stop it with `down`).")
@click.option("--host", help="Listen on this address (default: the adapter's, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Listen on this port (default 8080).")
@file_options
def up(detach: bool, host: str | None, port: int | None, compose: ComposeFiles) -> None:
    """Load the models and serve the API (and the OpenAI-compatible API)."""
    from runtime.server import daemon
    from runtime.server.serve import endpoint, local_url, serve

    loaded = compose.load()
    if not detach:
        code = serve(loaded.config, host, port, lambda line: click.echo(line, err=True))
        sys.exit(code)
    argv = [arg for f in loaded.files for arg in ("-f", str(f))]
    argv += ["--env-file", compose.env_file] if compose.env_file else []
    argv += [arg for pair in compose.env for arg in ("-e", pair)]
    argv += ["--host", host] if host else []
    argv += ["--port", str(port)] if port else []
    controller = loaded.config.controller
    if controller.subscriber is not None and controller.http is None:
        pid, log = daemon.start_detached(loaded.files[0], argv, None)
        click.echo(
            f"model-compose is running in the background (pid {pid}) as a queue worker; "
            f"log: {log}; stop it with `model-compose down`"
        )
        return
    real_host, real_port, base_path = endpoint(loaded.config, host, port)
    url = local_url(real_host, real_port)
    pid, log = daemon.start_detached(loaded.files[0], argv, f"{url}/health")
    click.echo(
        f"model-compose is running in the background (pid {pid}): API at "
        f"{url}{base_path}, OpenAI-compatible API at {url}/v1; log: {log}; "
        "stop it with `model-compose down`"
    )


@cli.command()
@file_options
def down(compose: ComposeFiles) -> None:
    """Stop a server started with `up -d` for this compose file."""
    from runtime.config.files import find_compose_files
    from runtime.config.units import parse_duration
    from runtime.server import daemon

    compose_file = find_compose_files(compose.files)[0]
    try:
        timeout = parse_duration(compose.load().config.controller.shutdown_timeout)
    except ModelComposeError:
        timeout = 30.0  # the file changed since `up`: still stop the server
    pid = daemon.stop(compose_file, timeout + 10)
    click.echo(f"stopped model-compose (pid {pid})")


for command in [run, *MODEL_COMMANDS]:
    cli.add_command(command)


def main() -> None:
    settings = CliSettings()
    try:
        cli.main(standalone_mode=False, obj=settings)
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
            settings,
            str(error.problems[0])
            + (
                f" (and {len(error.problems) - 1} more: run `model-compose validate`)"
                if len(error.problems) > 1
                else ""
            ),
        )
    except ModelComposeError as error:
        _fail(error, settings, str(error))
    except Exception as error:  # a bug: still one line, traceback with -v
        _fail(error, settings, f"internal error: {type(error).__name__}: {error}")


def _fail(error: BaseException, settings: CliSettings, message: str) -> None:
    if settings.verbose:
        traceback.print_exception(error)
    click.echo(f"error: {message}", err=True)
    sys.exit(getattr(error, "exit_code", 1))


if __name__ == "__main__":
    main()
