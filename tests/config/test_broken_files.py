"""A corpus of realistic broken compose files (tests/data/broken/), each run
through `model-compose validate` the way a user runs it: exit code 2, nothing
on stdout, and on stderr exactly the lines in tests/data/broken/expected.json
(`{file}` stands for the file's path). Two cases too big to keep in the tree
(a 2.7 MB file, bindings nested 10,000 deep) are written by the test."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from runtime.config import load_config

BROKEN = Path(__file__).parent.parent / "data" / "broken"
EXPECTED: dict[str, list[str]] = json.loads((BROKEN / "expected.json").read_text())
COMMAND = str(Path(sys.executable).parent / "model-compose")

TEXT_GENERATOR = """\
component:
  id: writer
  type: model
  task: text-generation
  model: HuggingFaceTB/SmolLM2-135M-Instruct
  prompt: ${input.prompt}
"""


def many_workflows(count: int) -> str:
    return (
        TEXT_GENERATOR
        + "workflows:\n"
        + "".join(
            f"  w{i}:\n    job: {{component: writer, input: {{prompt: 'Story {i}'}}}}\n"
            for i in range(count)
        )
    )


def nested_binding(depth: int) -> str:
    binding = "${input.a | " * depth + "${input.b}" + "}" * depth
    return TEXT_GENERATOR.replace("${input.prompt}", f"'{binding}'")


GENERATED: dict[str, Callable[[], str]] = {
    "huge-file.yml": lambda: many_workflows(50_000),
    "deeply-nested-binding.yml": lambda: nested_binding(10_000),
}


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int, str, str]]:
    """Every case's (path, exit code, stdout, stderr). The commands run in
    parallel: each is a fresh interpreter, mostly start-up time."""
    generated = tmp_path_factory.mktemp("generated")
    paths = {}
    for name in EXPECTED:
        if name in GENERATED:
            paths[name] = generated / name
            paths[name].write_text(GENERATED[name]())
        else:
            paths[name] = BROKEN / name

    def validate(path: Path) -> tuple[Path, int, str, str]:
        result = subprocess.run(
            [COMMAND, "validate", "-f", str(path)],
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=120,
            check=False,
        )
        return path.resolve(), result.returncode, result.stdout, result.stderr

    # A few at a time: the machine is shared with other tests.
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(paths, pool.map(validate, paths.values()), strict=True))


def test_every_file_of_the_corpus_has_its_expected_message() -> None:
    files = {path.name for path in BROKEN.glob("*.yml")}
    assert files | set(GENERATED) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_broken_file_fails_validation_with_its_exact_message(
    validated: dict[str, tuple[Path, int, str, str]], name: str
) -> None:
    path, code, stdout, stderr = validated[name]
    expected = [line.replace("{file}", str(path)) for line in EXPECTED[name]]
    assert (code, stdout, stderr.splitlines()) == (2, "", expected)


def test_a_large_file_under_the_size_limit_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "model-compose.yml"
    path.write_text(many_workflows(1_000))
    assert len(load_config([path], env={}).config.workflows) == 1_000


def test_an_env_file_that_is_not_text_fails_validation_with_its_location(tmp_path: Path) -> None:
    (tmp_path / "model-compose.yml").write_text(TEXT_GENERATOR)
    env_file = tmp_path / "secrets.env"
    env_file.write_bytes(b"API_KEY=\xff\xfe\n")
    result = subprocess.run(
        [COMMAND, "validate", "--env-file", str(env_file)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr.splitlines()) == (
        2,
        "",
        [
            f"error: {env_file}:1: the file is not UTF-8 text: byte 0xff at column 9 "
            "cannot be decoded",
            "1 problem found",
        ],
    )


def test_a_mistake_in_an_override_file_names_that_file_and_its_line() -> None:
    base, override = BROKEN / "merge" / "model-compose.yml", BROKEN / "merge" / "override.yml"
    result = subprocess.run(
        [COMMAND, "validate", "-f", str(base), "-f", str(override)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr.splitlines()) == (
        2,
        "",
        [
            f"error: {override.resolve()}:4: component.action: unknown key 'max_output_lenght'"
            " (did you mean 'max_output_length'?)",
            "1 problem found",
        ],
    )
