"""The `model-compose` command, run the way a user runs it: a subprocess,
asserting exit code, stdout and stderr separately."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from convert.embedded import embedded_model_path
from tests.server.composes import RELAY

ROOT = Path(__file__).parent.parent
COMMAND = str(Path(sys.executable).parent / "model-compose")
QUICKSTART_INPUT = json.dumps(
    {
        "system_prompt": "You are a helpful AI assistant.",
        "user_prompt": "Explain quantum computing in simple terms.",
    }
)

needs_model = pytest.mark.skipif(embedded_model_path() is None, reason="embedded model missing")


def run(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`env` is added to this process's environment."""
    return subprocess.run(
        [COMMAND, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
        env={**os.environ, **env} if env else None,
    )


def compose(tmp_path: Path, action: str, task: str = "chat-completion") -> Path:
    """A small greedy workflow on the embedded model."""
    path = tmp_path / "model-compose.yml"
    path.write_text(
        textwrap.dedent(f"""
        component:
          type: model
          task: {task}
          model: HuggingFaceTB/SmolLM2-135M-Instruct
          action:
        """)
        + textwrap.indent(textwrap.dedent(action), "    ")
        + "    params: {do_sample: false}\n"
    )
    return path


CHAT = """
messages:
  - role: system
    content: You are a helpful assistant.
  - role: user
    content: ${input.question}
max_output_length: 16
"""


@needs_model
def test_the_readme_quickstart_prints_a_sensible_answer() -> None:
    result = run("run", "-f", "examples/quickstart", "--input", QUICKSTART_INPUT)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    output = json.loads(result.stdout)
    assert list(output) == ["generated"]
    assert "quantum" in output["generated"].lower()


@needs_model
def test_the_seeds_dashed_input_keys_work_as_documented() -> None:
    seed_input = '{"system-prompt": "You are a helpful AI assistant.", "user-prompt": "Hi!"}'
    result = run("run", "-f", "examples/quickstart", "--input", seed_input)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["generated"]


@needs_model
def test_text_output_is_printed_as_text(tmp_path: Path) -> None:
    compose(tmp_path, "prompt: ${input.prompt}\nmax_output_length: 8\n", "text-generation")
    result = run("run", "--input", '{"prompt": "Once upon a time"}', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Once upon a time")
    assert not result.stdout.startswith('"')


@needs_model
def test_input_can_come_from_a_file_and_output_go_to_a_file(tmp_path: Path) -> None:
    compose(tmp_path, CHAT)
    (tmp_path / "in.json").write_text('{"question": "What is the capital of France?"}')
    result = run("run", "--input", "@in.json", "-o", "out.txt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "Paris" in (tmp_path / "out.txt").read_text()


@needs_model
def test_a_streaming_action_streams_to_the_terminal_once(tmp_path: Path) -> None:
    compose(tmp_path, CHAT + "streaming: true\n")
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal on stdout, as a user has
        os.chdir(tmp_path)
        os.execv(
            COMMAND, [COMMAND, "run", "--input", '{"question": "What is the capital of France?"}']
        )
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    screen = b"".join(chunks).decode()
    assert os.waitstatus_to_exitcode(status) == 0, screen
    assert screen.count("Paris") == 1


def run_on_terminal(*args: str, cwd: Path, stderr_terminal: bool) -> tuple[str, str, int]:
    """`model-compose` with stdout on a terminal of its own (and stderr on
    another one, or a pipe): (stdout, stderr, exit code), as the user sees them."""
    out_master, out_slave = pty.openpty()
    err_master, err_slave = pty.openpty() if stderr_terminal else os.pipe()
    process = subprocess.Popen(
        [COMMAND, *args], cwd=cwd, stdin=subprocess.DEVNULL, stdout=out_slave, stderr=err_slave
    )
    os.close(out_slave)
    os.close(err_slave)
    received: dict[int, list[bytes]] = {out_master: [], err_master: []}
    open_ends = set(received)
    while open_ends:
        for fd in select.select(list(open_ends), [], [], 300)[0]:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # a terminal whose other end closed
                chunk = b""
            if chunk:
                received[fd].append(chunk)
            else:
                open_ends.discard(fd)
                os.close(fd)
    code = process.wait(timeout=60)
    # A terminal writes each newline as CR LF.
    out, err = (b"".join(received[fd]).decode().replace("\r\n", "\n") for fd in received)
    return out, err, code


# A reasoning model's run from a model that does not reason: the prompt ends
# inside an open `<think>` block (a prefill), so the output starts as
# reasoning; the budget closes the block after 4 tokens and the model answers.
THINKING = """
messages:
  - role: user
    content: ${input.question}
  - role: assistant
    content: "<think>\\n"
reasoning_budget: 4
max_output_length: 24
streaming: true
"""
APART = """
workflows:
  - id: answer
    default: true
    job: {output: "${output}"}
  - id: apart
    job: {output: {answer: "${output}", reasoning: "${reasoning}"}}
"""
FRANCE = '{"question": "What is the capital of France?"}'


def thinking_compose(tmp_path: Path) -> dict[str, str]:
    """A workflow that reasons, and what it answers and reasons (greedy: every run alike)."""
    path = compose(tmp_path, THINKING)
    path.write_text(APART + path.read_text())
    result = run("run", "apart", "--input", FRANCE, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    expected = json.loads(result.stdout)
    assert expected["reasoning"] and expected["answer"]
    assert expected["reasoning"] not in expected["answer"]
    return expected


@needs_model
def test_on_a_terminal_the_reasoning_streams_dimmed_to_stderr_and_the_answer_to_stdout(
    tmp_path: Path,
) -> None:
    expected = thinking_compose(tmp_path)
    out, err, code = run_on_terminal("run", "--input", FRANCE, cwd=tmp_path, stderr_terminal=True)
    assert code == 0, err
    assert out == expected["answer"] + "\n"
    dimmed = re.findall(r"\x1b\[2m(.*?)\x1b\[0m", err, re.DOTALL)
    assert "".join(dimmed) == expected["reasoning"]
    assert re.sub(r"\x1b\[[0-9;]*m", "", err).endswith(expected["reasoning"] + "\n")


@needs_model
def test_reasoning_is_plain_on_a_piped_stderr_and_absent_from_piped_output(
    tmp_path: Path,
) -> None:
    expected = thinking_compose(tmp_path)
    out, err, code = run_on_terminal("run", "--input", FRANCE, cwd=tmp_path, stderr_terminal=False)
    assert code == 0, err
    assert (out, err) == (expected["answer"] + "\n", expected["reasoning"] + "\n")
    # Nothing streams when stdout is not a terminal: the answer only, once.
    piped = run("run", "--input", FRANCE, cwd=tmp_path)
    assert (piped.returncode, piped.stdout, piped.stderr) == (0, expected["answer"] + "\n", "")


@needs_model
def test_the_seed_workflow_runs_without_its_optional_system_prompt() -> None:
    result = run("run", "-f", "examples/quickstart", "--input", '{"user-prompt": "Hi!"}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["generated"]


def test_the_seed_file_without_its_user_prompt_is_one_line_and_exit_code_2() -> None:
    # Checked before the seed's model is looked up: no Hub needed.
    args = ("run", "-f", "examples/chat-completion", "--input", '{"system-prompt": "x"}')
    result = run(*args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "error: missing required input 'user_prompt'\n"


def test_validate_says_the_seeds_system_prompt_is_optional() -> None:
    result = run("validate", "-f", "examples/chat-completion")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:4] == [
        "workflow __workflow__ (Generate Chat Messages)",
        "  input system_prompt: text, optional",
        "  input user_prompt: text, required",
    ]


def test_a_missing_required_input_is_one_line_and_exit_code_2() -> None:
    result = run("run", "-f", "examples/quickstart", "--input", '{"system_prompt": "x"}')
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "error: missing required input 'user_prompt'\n"


def test_invalid_json_input_is_one_line_and_exit_code_2() -> None:
    result = run("run", "-f", "examples/quickstart", "--input", "{nope")
    assert result.returncode == 2
    assert result.stderr == (
        "error: --input is not valid JSON: Expecting property name enclosed in double quotes:"
        " line 1 column 2 (char 1)\n"
    )


def test_an_unknown_workflow_names_the_known_ones() -> None:
    result = run("run", "nope", "-f", "examples/role-based", "--input", "{}")
    assert result.returncode == 2
    assert result.stderr == (
        "error: unknown workflow 'nope' (known: 'customer-support', 'code-reviewer')\n"
    )


def test_a_config_error_is_one_located_line(tmp_path: Path) -> None:
    (tmp_path / "model-compose.yml").write_text("component:\n  type: model\n  tsk: x\n")
    result = run("run", "--input", "{}", cwd=tmp_path)
    assert result.returncode == 2
    path = tmp_path / "model-compose.yml"
    assert result.stderr == (
        f"error: {path}:1: component: missing required key 'task'"
        " (one of: chat-completion, text-generation)"
        " (and 1 more: run `model-compose validate`)\n"
    )


def test_validate_prints_every_problem_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "model-compose.yml").write_text("component:\n  type: model\n  tsk: x\n")
    result = run("validate", cwd=tmp_path)
    path = tmp_path / "model-compose.yml"
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"error: {path}:1: component: missing required key 'task'"
        " (one of: chat-completion, text-generation)",
        f"error: {path}:3: component: unknown key 'tsk' (did you mean 'task'?)",
        "2 problems found",
    ]


def test_validate_lists_the_inferred_inputs_of_a_good_file() -> None:
    result = run("validate", "-f", "examples/chat-template")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "workflow __workflow__ (Templated assistant)",
        '  input role: text, default: "helpful assistant"',
        "  input additional_instructions: text, required",
        '  input tone: text, default: "professional and friendly"',
        "  input user_prompt: text, required",
        "component __component__: chat-completion on HuggingFaceTB/SmolLM2-135M-Instruct",
    ]


def test_validate_lists_a_workflow_component_by_the_workflow_it_runs(tmp_path: Path) -> None:
    (tmp_path / "model-compose.yml").write_text(RELAY)
    result = run("validate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "workflow front (Write through a relay)",
        "  input text: text, required",
        "workflow write",
        "  input prompt: text, required",
        "component relay: workflow write",
        "component writer: text-generation on HuggingFaceTB/SmolLM2-135M-Instruct",
    ]


def hub_env(tmp_path: Path, endpoint: str, **more: str) -> dict[str, str]:
    """huggingface_hub pointed at `endpoint`, with an empty cache and no token."""
    return {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_TOKEN": "",
        "HF_HUB_OFFLINE": "",
        **more,
    }


def test_the_seed_file_fetches_its_model_from_the_hub_and_runs(tmp_path: Path) -> None:
    from convert.synthetic import write_llama_gguf
    from tests.convert.hub_server import HubStandIn

    hub = HubStandIn().start()
    try:
        # A tiny random-weight model as the seed model's GGUF build.
        tiny = write_llama_gguf(tmp_path / "tiny.gguf", name="tiny").read_bytes()
        hub.add_repo("ggml-org/SmolLM3-3B-GGUF", {"SmolLM3-Q4_K_M.gguf": tiny})
        env = hub_env(tmp_path, hub.url)
        args = ("run", "-f", "examples/chat-completion", "--input", QUICKSTART_INPUT)
        result = run(*args, env=env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout).keys() == {"generated"}
        assert result.stderr.startswith(
            "HuggingFaceTB/SmolLM3-3B is a transformers repository; using its GGUF build "
            "ggml-org/SmolLM3-3B-GGUF (curated), file SmolLM3-Q4_K_M.gguf "
            "(Q4_K_M, the default quant)\n"
        )
        assert "SmolLM3-Q4_K_M.gguf: 100%" in result.stderr
        # The second run finds it in the cache, even without the Hub.
        offline = run(*args, env={**env, "HF_HUB_OFFLINE": "1"})
        assert offline.returncode == 0, offline.stderr
        assert offline.stderr.startswith("HF_HUB_OFFLINE=1 is set; using the cached ")
        assert "100%" not in offline.stderr
    finally:
        hub.stop()


def closed_port_url() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_a_hub_model_without_the_hub_is_one_line_naming_the_id(tmp_path: Path) -> None:
    url = closed_port_url()
    args = ("run", "-f", "examples/chat-completion", "--input", QUICKSTART_INPUT)
    result = run(*args, env=hub_env(tmp_path, url))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: cannot reach the Hugging Face Hub at {url} (ConnectError), and no GGUF build "
        f"of HuggingFaceTB/SmolLM3-3B is in the Hugging Face cache ({tmp_path}/hf-home/hub): "
        "check the network connection and HF_ENDPOINT, or point 'model:' at a local .gguf file\n"
    )
    offline = run(*args, env=hub_env(tmp_path, url, HF_HUB_OFFLINE="1"))
    assert (offline.returncode, offline.stdout) == (2, "")
    assert offline.stderr == (
        "error: HF_HUB_OFFLINE=1 is set, and no GGUF build of HuggingFaceTB/SmolLM3-3B is in "
        f"the Hugging Face cache ({tmp_path}/hf-home/hub): fetch it first with "
        "`model-compose pull HuggingFaceTB/SmolLM3-3B` while online, "
        "or point 'model:' at a local .gguf file\n"
    )


def test_a_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    path = compose(tmp_path, CHAT)
    path.write_text(path.read_text().replace("HuggingFaceTB/SmolLM2-135M-Instruct", "./gone.gguf"))
    result = run("run", "--input", '{"question": "hi"}', cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"error: model file not found: {tmp_path / 'gone.gguf'}\n"


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    path = compose(tmp_path, CHAT)
    path.write_text(path.read_text().replace("HuggingFaceTB/SmolLM2-135M-Instruct", "./gone.gguf"))
    result = run("-v", "run", "--input", '{"question": "hi"}', cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert result.stderr.endswith(f"error: model file not found: {tmp_path / 'gone.gguf'}\n")


def test_a_usage_error_is_one_line_and_exit_code_2() -> None:
    result = run("run", "--bogus")
    assert result.returncode == 2
    assert result.stderr == "error: No such option '--bogus'.\n"


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "run" in result.stdout and "validate" in result.stdout


@needs_model
def test_an_answer_cut_by_the_context_says_why_on_stderr(tmp_path: Path) -> None:
    path = compose(
        tmp_path, "prompt: ${input.prompt}\nmax_output_length: 32768\n", "text-generation"
    )
    path.write_text(path.read_text().replace("  action:", "  context_length: 64\n  action:"))
    result = run("run", "--input", '{"prompt": "Once upon a time"}', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Once upon a time")
    assert result.stderr == (
        "note: max output length 32768 clamped to the 60 tokens left in the 64-token context"
        " (the prompt is 4 tokens)\n"
    )
