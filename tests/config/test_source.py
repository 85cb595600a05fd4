"""Reading YAML: lines of keys, duplicate keys, and quoting the seeds'
unquoted bindings."""

from __future__ import annotations

from pathlib import Path

from runtime.config.source import load_yaml, quote_plain_bindings


def test_a_plain_binding_with_a_colon_is_quoted() -> None:
    text = 'text: ${input.template | "Generate text about: ${input.topic}"}\n'
    assert quote_plain_bindings(text) == (
        "text: '${input.template | \"Generate text about: ${input.topic}\"}'\n"
    )


def test_a_trailing_comment_stays_outside_the_quotes() -> None:
    assert quote_plain_bindings("  - ${input.a | 'x: y'}  # note\n") == (
        "  - '${input.a | ''x: y''}'  # note\n"
    )


def test_lines_inside_block_scalars_are_left_alone() -> None:
    text = (
        "a:\n"
        "  text: |\n"
        "    ### Instruction:\n"
        "    ${input.instruction}\n"
        "\n"
        "    ${input.more}\n"
        "  other: >-\n"
        "    ${input.x}\n"
        '  after: ${input.t | "a: b"}\n'
    )
    assert quote_plain_bindings(text).splitlines() == [
        *text.splitlines()[:-1],
        "  after: '${input.t | \"a: b\"}'",
    ]


def test_a_file_with_an_unquoted_binding_keeps_its_block_text(tmp_path: Path) -> None:
    path = tmp_path / "f.yml"
    path.write_text(
        "one:\n  text: |\n    Do: ${input.instruction}\n    ${input.instruction}\n"
        'two:\n  text: ${input.template | "Generate text about: ${input.topic}"}\n'
    )
    data = load_yaml(path).data
    assert data["one"]["text"] == "Do: ${input.instruction}\n${input.instruction}\n"
    assert data["two"]["text"] == '${input.template | "Generate text about: ${input.topic}"}'


def test_keys_remember_their_lines_and_sections_start_at_their_key(tmp_path: Path) -> None:
    path = tmp_path / "f.yml"
    path.write_text("component:\n  type: model\n\n  task: x\n")
    document = load_yaml(path)
    component = document.data["component"]
    assert document.positions.locate(component, "task") == (str(path), 4)
    assert document.positions.locate(component) == (str(path), 1)
