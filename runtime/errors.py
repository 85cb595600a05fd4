"""The user-facing error hierarchy.

Every error a user can cause is a `UserError`: the CLI turns it into one line on
stderr and exit code 2, the HTTP layer into a 4xx JSON body. Anything else that
goes wrong while running is a `RuntimeFailure` (exit code 1, HTTP 5xx). Nothing
else should escape to the edges.
"""

from __future__ import annotations

from dataclasses import dataclass


class ModelComposeError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1
    error_type = "runtime_error"


class UserError(ModelComposeError):
    """Something the user wrote or sent is wrong."""

    exit_code = 2
    error_type = "invalid_request"


@dataclass(frozen=True)
class Location:
    """Where in a compose file a problem is: file, 1-based line, key path."""

    file: str | None = None
    line: int | None = None
    path: str | None = None

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
        if self.path:
            where += f": {self.path}"
        return where


@dataclass(frozen=True)
class Problem:
    """One problem found in a compose file."""

    message: str
    location: Location = Location()

    def __str__(self) -> str:
        if self.location == Location():
            return self.message
        return f"{self.location}: {self.message}"


class ConfigError(UserError):
    """A compose file cannot be loaded; carries every problem found."""

    error_type = "config_error"

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class BindingSyntaxError(UserError):
    """A `${...}` expression does not parse; `offset` is its index in the text."""

    error_type = "config_error"

    def __init__(self, message: str, text: str, offset: int) -> None:
        self.text = text
        self.offset = offset
        self.reason = message
        super().__init__(f"{message} in {text!r} at column {offset + 1}")


class InputError(UserError):
    """The input of a run is wrong: a required input is missing, or a value has
    the wrong type. `name` is the input's name when there is one."""

    error_type = "invalid_input"

    def __init__(self, message: str, name: str | None = None) -> None:
        self.name = name
        super().__init__(message)


class NotFoundError(UserError):
    """A workflow, task, component or model named by the user does not exist."""

    error_type = "not_found"


class PromptTooLongError(UserError):
    """The prompt does not fit the model's context window."""

    error_type = "context_length_exceeded"

    def __init__(self, prompt_tokens: int, context_length: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length
        super().__init__(
            f"the prompt is {prompt_tokens} tokens long, but the model's context "
            f"holds {context_length} tokens"
        )


class ModelLoadError(ModelComposeError):
    """A model file cannot be found, fetched or loaded."""

    error_type = "model_error"


class ModelFileError(ModelLoadError):
    """The model file itself is wrong: missing, cut short, not GGUF. The user
    fixes it (a new download, another path), so the CLI exits 2 as for any
    wrong file; to an HTTP client it is still the server's problem."""

    exit_code = 2


class ComponentUnavailableError(ModelComposeError):
    """A component's model could not be loaded: what runs on it fails with
    this (HTTP 503), what does not keeps running. Its message, exit code and
    type are the load error's own."""

    def __init__(self, component_id: str, cause: ModelComposeError) -> None:
        super().__init__(str(cause))
        self.component_id = component_id
        self.cause = cause
        self.exit_code = cause.exit_code
        self.error_type = cause.error_type


class ModelUnavailableError(UserError):
    """A model reference cannot be resolved to a GGUF file on this machine."""

    error_type = "model_not_found"


class RuntimeFailure(ModelComposeError):
    """A run failed for a reason that is not the user's input."""


class QueueUnavailableError(RuntimeFailure):
    """Redis cannot be reached, or dropped the connection mid-run (HTTP 503)."""

    error_type = "queue_unavailable"


class QueueFullError(RuntimeFailure):
    """Every slot is busy and the waiting queue is full: retry later (HTTP 503)."""

    error_type = "server_busy"
