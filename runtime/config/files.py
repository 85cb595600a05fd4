"""Finding compose files and deep-merging several of them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runtime.config.positions import Positions
from runtime.errors import ConfigError

COMPOSE_FILE_NAMES = ("model-compose.yml", "model-compose.yaml")


def find_compose_files(given: Sequence[str | Path], cwd: Path | None = None) -> list[Path]:
    """The files to load: each `-f` value (a file, or a folder holding a
    model-compose.yml), or the current folder's model-compose.yml."""
    cwd = cwd or Path.cwd()
    if not given:
        return [_file_in(cwd, default=True)]
    found: list[Path] = []
    for value in given:
        path = (cwd / Path(value).expanduser()).resolve()
        if path.is_dir():
            found.append(_file_in(path))
        elif path.is_file():
            found.append(path)
        else:
            raise ConfigError(f"compose file not found: {value}")
    return found


def _file_in(folder: Path, default: bool = False) -> Path:
    for name in COMPOSE_FILE_NAMES:
        if (folder / name).is_file():
            return (folder / name).resolve()
    where = "the current folder" if default else str(folder)
    raise ConfigError(f"no model-compose.yml or model-compose.yaml in {where} (use -f FILE)")


def deep_merge(base: Any, override: Any, positions: Positions) -> Any:
    """Mappings merge key by key; lists and scalars in `override` replace."""
    if isinstance(base, dict) and isinstance(override, dict):
        for key, value in override.items():
            if key in base:
                base[key] = deep_merge(base[key], value, positions)
            else:
                base[key] = value
            positions.copy_entry(base, key, override, key)
        return base
    return override
