"""`${env.NAME}` and `${env.NAME | default}`, substituted when the file loads.

Precedence, lowest first: the `.env` file (or `--env-file`), the OS
environment, then `-e KEY=VAL` from the command line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from runtime.config.limits import read_text
from runtime.errors import UserError

# `${env.NAME}` or `${env.NAME | default}`; a quoted default may hold `}`.
# Written so that a failed match costs time linear in what it scanned: no two
# quantifiers compete for the same spaces (the default is stripped in code).
_ENV_BINDING = re.compile(
    r"""\$\{\s*env\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*
        (?:\|(?P<default>\s*(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*(?=\})|[^}]*))?\}""",
    re.VERBOSE,
)


class EnvError(UserError):
    """An env variable is missing, or an env file is malformed."""


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a dotenv file: `KEY=VALUE` lines, `#` comments, optional quotes
    and a leading `export`. Raises ConfigError when it is not UTF-8 text."""
    values: dict[str, str] = {}
    for number, raw in enumerate(read_text(str(path)).splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise EnvError(f"{path}:{number}: expected KEY=VALUE, got {raw.strip()!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def build_env(
    env_file: Path | None,
    overrides: Mapping[str, str] | None = None,
    default_env_file: Path | None = None,
) -> dict[str, str]:
    """The variables `${env.X}` sees. An explicit `env_file` must exist; the
    default `.env` is read only when present."""
    env: dict[str, str] = {}
    if env_file is not None:
        if not env_file.is_file():
            raise EnvError(f"env file not found: {env_file}")
        env.update(read_env_file(env_file))
    elif default_env_file is not None and default_env_file.is_file():
        env.update(read_env_file(default_env_file))
    env.update(os.environ)
    env.update(overrides or {})
    return env


def _unquote(default: str) -> str:
    if len(default) >= 2 and default[0] == default[-1] and default[0] in "\"'":
        return re.sub(r"\\(.)", r"\1", default[1:-1])
    return default


def substitute(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace env bindings in one scalar. Returns the new text and the names
    of variables that were unset and had no default. The result stays a
    string: the schema converts it (`port: ${env.PORT | 8080}` → 8080)."""
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name, default = match["name"], match["default"]
        if name in env:
            return env[name]
        if default is not None:
            return _unquote(default.strip())
        missing.append(name)
        return ""

    # A binding ends with `}`: past the last one, every match attempt would
    # scan to the end of the text and fail, which is quadratic in long text.
    end = text.rfind("}") + 1
    return _ENV_BINDING.sub(replace, text[:end]) + text[end:], missing


def has_env_binding(text: str) -> bool:
    end = text.rfind("}") + 1
    return "${" in text and _ENV_BINDING.search(text, 0, end) is not None
