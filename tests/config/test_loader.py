"""The loader: shorthands, merging, env, and located error messages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from runtime.config import ComposeConfig, load_config
from runtime.errors import ConfigError

COMPONENT = """
component:
  type: model
  task: chat-completion
  model: ./m.gguf
  action:
    messages:
      - role: user
        content: ${input.q}
"""


def write(tmp_path: Path, text: str, name: str = "model-compose.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def config_of(tmp_path: Path, text: str) -> ComposeConfig:
    """The config that `text`, written as tmp_path's compose file, loads to."""
    return load_config([write(tmp_path, text)]).config


def problems(tmp_path: Path, text: str, **kwargs: object) -> list[str]:
    """Every problem as 'line: path: message', without the file name."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config([path], **kwargs)  # type: ignore[arg-type]
    return [str(p).removeprefix(f"{path}:") for p in caught.value.problems]


def test_singular_keys_are_shorthands_for_one_element_lists(tmp_path: Path) -> None:
    config = config_of(tmp_path, COMPONENT)
    assert [c.id for c in config.components] == ["__component__"]
    assert [w.id for w in config.workflows] == ["__workflow__"]
    assert config.components[0].actions[0].messages == [{"role": "user", "content": "${input.q}"}]


def test_entities_may_be_written_as_a_mapping_keyed_by_id(tmp_path: Path) -> None:
    config = config_of(
        tmp_path,
        """
        components:
          chat:
            type: model
            task: text-generation
            model: ./m.gguf
            prompt: ${input.p}
        workflows:
          one:
            job: {component: chat}
          two:
            default: true
            job: {component: chat}
        """,
    )
    assert [c.id for c in config.components] == ["chat"]
    assert config.workflow(None).id == "two"


def test_an_unknown_key_names_file_line_path_and_the_nearest_key(tmp_path: Path) -> None:
    assert problems(tmp_path, COMPONENT + "    max_output_lenght: 100\n") == [
        "9: component.action: unknown key 'max_output_lenght' (did you mean 'max_output_length'?)"
    ]


def test_an_unknown_generation_parameter_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    assert problems(tmp_path, COMPONENT + "    params:\n      temprature: 0.5\n") == [
        "10: component.action.params: unknown generation parameter 'temprature'"
        " (did you mean 'temperature'?)"
    ]


def test_a_wrong_type_names_the_component_by_its_id(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        """
        components:
          - id: chat
            type: model
            task: chat-completion
            model: ./m.gguf
            max_concurrent_count: many
        """,
    ) == ["6: components[chat].max_concurrent_count: expected an integer, got a string"]


def test_references_duplicates_and_cycles_are_all_reported_at_once(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        """
        componets: []
        workflows:
          - id: a
            jobs:
              - id: one
                component: chatt
                depends_on: [two]
              - id: two
                component: chat
                depends_on: [one]
              - id: three
                component: chat
                depends_on: [fourr]
          - id: a
        components:
          - id: chat
            type: model
            task: chat-completion
            model: foo
          - id: chat
            type: model
            task: summarize
            model: ./x.gguf
        """,
    ) == [
        "1: unknown top-level key 'componets' (did you mean 'components'?)",
        "6: workflows[a].jobs[one]: unknown component 'chatt' (did you mean 'chat'?)",
        "7: workflows[a].jobs[one]: jobs depend on each other in a cycle: one → two → one",
        "13: workflows[a].jobs[three]: depends on unknown job 'fourr'",
        "14: workflows: duplicate workflow id 'a'",
        "14: workflows[a]: this workflow has no jobs, so it needs exactly one component,"
        " but the file has 2",
        "19: components[chat].model: model 'foo' is neither a path to a .gguf file"
        " (./model.gguf) nor a Hugging Face id (owner/name)",
        "20: components: duplicate component id 'chat'",
        "22: components[chat]: unknown task 'summarize' (supported: chat-completion,"
        " text-generation)",
    ]


def test_conflicting_shorthands_and_bad_bindings_are_located(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        """
        component:
          type: model
          task: text-generation
          model: ./m.gguf
          text: hi ${input.x
          prompt: hello
        controller:
          port: 80
          adapter:
            port: 81
        workflow:
          jobs:
            - component: a
            - component: b
        """,
    ) == [
        "5: component.action: write 'prompt' or 'text' (its alias), not both",
        "5: component.action.text: unterminated '${': no closing '}' in 'hi ${input.x' (column 4)",
        "8: controller: put 'type/host/port/base_path' under 'adapter', not on the controller"
        " as well",
        "13: workflow: every entry of 'jobs' needs an 'id' when there are several",
        "13: workflow.jobs[0]: unknown component 'a'",
        "14: workflow.jobs[1]: unknown component 'b'",
    ]


def test_tabs_in_indentation_get_a_plain_explanation(tmp_path: Path) -> None:
    assert problems(tmp_path, "component:\n\ttype: model\n") == [
        "2: invalid YAML: found character '\\t' that cannot start any token"
        " (YAML indentation must use spaces, not tabs)"
    ]


def test_a_file_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    assert problems(tmp_path, "- just\n- a list\n") == [
        "1: the file must be a mapping of sections (controller, components, workflows)"
    ]


def test_controller_level_http_settings_are_one_adapter(tmp_path: Path) -> None:
    config = config_of(tmp_path, COMPONENT + "controller:\n  port: 9090\n")
    assert [(a.host, a.port) for a in config.controller.adapters] == [("127.0.0.1", 9090)]


def test_an_unset_env_variable_without_default_is_a_load_error(tmp_path: Path) -> None:
    text = COMPONENT + "controller:\n  adapter:\n    host: ${env.MC_TEST_UNSET_HOST}\n"
    assert problems(tmp_path, text) == [
        "11: environment variable 'MC_TEST_UNSET_HOST' is not set and has no default"
    ]


def test_env_defaults_are_converted_to_the_fields_type(tmp_path: Path) -> None:
    text = COMPONENT + "controller:\n  adapter:\n    port: ${env.MC_TEST_PORT | 9000}\n"
    config = config_of(tmp_path, text)
    assert config.controller.adapters[0].port == 9000


def test_env_precedence_is_dotenv_then_os_then_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = COMPONENT + 'controller:\n  name: "${env.A}-${env.B}-${env.C}"\n'
    path = write(tmp_path, text)
    (tmp_path / ".env").write_text("A=dotenv\nB=dotenv\nC=dotenv\n")
    monkeypatch.setenv("B", "os")
    monkeypatch.setenv("C", "os")
    config = load_config([path], env={"C": "flag"}).config
    assert config.controller.name == "dotenv-os-flag"


def test_an_env_file_replaces_the_default_dotenv(tmp_path: Path) -> None:
    path = write(tmp_path, COMPONENT + 'controller:\n  name: "${env.MC_TEST_NAME | none}"\n')
    (tmp_path / ".env").write_text("MC_TEST_NAME=dotenv\n")
    other = tmp_path / "other.env"
    other.write_text('export MC_TEST_NAME="from file"  \n# comment\n')
    assert load_config([path], env_file=other).config.controller.name == "from file"


def test_several_files_deep_merge_and_lists_replace(tmp_path: Path) -> None:
    base = write(tmp_path, COMPONENT + "controller:\n  adapter: {port: 1}\n  webui: {port: 2}\n")
    override = write(
        tmp_path,
        """
        controller:
          webui: {port: 3}
        component:
          model: ./other.gguf
          action:
            messages: [{role: user, content: hi}]
        """,
        "override.yml",
    )
    config = load_config([base, override]).config
    assert config.controller.adapters[0].port == 1
    assert config.controller.webui is not None and config.controller.webui.port == 3
    assert config.components[0].model == "./other.gguf"
    assert config.components[0].actions[0].messages == [{"role": "user", "content": "hi"}]


def test_a_folder_means_its_model_compose_file(tmp_path: Path) -> None:
    write(tmp_path, COMPONENT, "model-compose.yaml")
    loaded = load_config([tmp_path])
    assert loaded.files == [(tmp_path / "model-compose.yaml").resolve()]


def test_a_missing_file_or_folder_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        load_config(["nope.yml"], cwd=tmp_path)
    assert str(missing.value) == "compose file not found: nope.yml"
    with pytest.raises(ConfigError) as empty:
        load_config([], cwd=tmp_path)
    assert str(empty.value) == (
        "no model-compose.yml or model-compose.yaml in the current folder (use -f FILE)"
    )


def test_the_llama_cpp_knobs_are_accepted_on_the_component_and_under_options(
    tmp_path: Path,
) -> None:
    text = COMPONENT.replace(
        "  model: ./m.gguf\n",
        "  model: ./m.gguf\n  context_length: 2048\n  n_batch: 256\n"
        "  options: {n_threads: 2, n_gpu_layers: 0}\n",
    )
    component = config_of(tmp_path, text).components[0]
    assert component.context_length == 2048
    assert component.options is not None and component.options.n_threads == 2


def test_the_model_may_be_a_mapping(tmp_path: Path) -> None:
    text = COMPONENT.replace(
        "  model: ./m.gguf\n",
        "  model:\n    provider: local\n    path: ./m.gguf\n    format: gguf\n",
    )
    component = config_of(tmp_path, text).components[0]
    assert not isinstance(component.model, str) and component.model.path == "./m.gguf"


def test_an_inline_job_component_is_lifted_and_named(tmp_path: Path) -> None:
    config = config_of(
        tmp_path,
        """
        workflow:
          id: wf
          job:
            id: gen
            component:
              type: model
              task: text-generation
              model: ./m.gguf
              prompt: ${input.p}
        """,
    )
    assert [c.id for c in config.components] == ["wf.gen"]
    assert config.workflows[0].jobs[0].component == "wf.gen"


def test_a_component_without_an_action_takes_its_tasks_natural_input(tmp_path: Path) -> None:
    config = config_of(
        tmp_path,
        """
        component:
          type: model
          task: chat-completion
          model: HuggingFaceTB/SmolLM3-3B
        """,
    )
    assert config.components[0].actions[0].messages == "${input.messages}"


def test_unsupported_component_types_say_what_is_supported(tmp_path: Path) -> None:
    assert problems(tmp_path, "component:\n  type: shell\n  command: [ls]\n") == [
        "2: component: component type 'shell' is not supported here (supported: model, workflow)"
    ]


def test_parallel_and_max_queue_are_checked(tmp_path: Path) -> None:
    text = COMPONENT.replace(
        "  model: ./m.gguf\n", "  model: ./m.gguf\n  parallel: 0\n  max_queue: -1\n"
    )
    assert problems(tmp_path, text) == [
        "5: component.parallel: parallel must be at least 1",
        "6: component.max_queue: max_queue must be 0 or more",
    ]


def test_memory_options_are_checked_where_they_are_written(tmp_path: Path) -> None:
    text = COMPONENT.replace(
        "  model: ./m.gguf\n",
        "  model: ./m.gguf\n  context_length: 2048\n  kv_cache_type: q7\n"
        "  options:\n    kv_cache_size: 1024\n",
    )
    assert problems(tmp_path, text) == [
        "6: component.kv_cache_type: invalid value 'q7'",
    ]
    text = text.replace("kv_cache_type: q7", "kv_cache_type: q8_0")
    assert problems(tmp_path, text) == [
        "8: component.options.kv_cache_size: kv_cache_size (1024 tokens) is smaller than "
        "context_length (2048): one conversation could not fill its context"
    ]
    assert problems(tmp_path, text.replace("kv_cache_size: 1024", "kv_cache_size: 0")) == [
        "8: component.options.kv_cache_size: kv_cache_size must be a positive number of tokens"
    ]


def test_memory_options_reach_the_model_spec(tmp_path: Path) -> None:
    from runtime.tasks.components import model_spec

    text = COMPONENT.replace(
        "  model: ./m.gguf\n",
        "  model: ./m.gguf\n  kv_cache_type: q8_0\n  use_mmap: false\n"
        "  options:\n    kv_cache_size: 8192\n    use_mlock: true\n    use_mmap: true\n",
    )
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    spec = model_spec(config_of(tmp_path, text).components[0], tmp_path)
    # The component's own key wins over `options:`.
    assert (spec.kv_cache_type, spec.kv_cache_size, spec.use_mmap, spec.use_mlock) == (
        "q8_0",
        8192,
        False,
        True,
    )


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("keep_alive: 5m", 300.0),
        ("keep_alive: 30s", 30.0),
        ("keep_alive: 90", 90.0),
        ("keep_alive: 0", 0.0),
        ("keep_alive: -1", None),
        ("keep_alive: '-1'", None),
        ("keep_alive: null", None),
        ("options: {keep_alive: 1h}", 3600.0),
        ("", None),
    ],
)
def test_keep_alive_is_a_duration_or_for_ever(
    tmp_path: Path, written: str, seconds: float | None
) -> None:
    from runtime.tasks.components import component_keep_alive

    text = COMPONENT.replace("  model: ./m.gguf\n", f"  model: ./m.gguf\n  {written}\n")
    assert component_keep_alive(config_of(tmp_path, text).components[0]) == seconds


def test_a_bad_keep_alive_is_located(tmp_path: Path) -> None:
    text = COMPONENT.replace(
        "  model: ./m.gguf\n",
        "  model: ./m.gguf\n  keep_alive: 5 minutes\n  options:\n    keep_alive: '-'\n",
    )
    expected = "expected a duration like 30s, 5m or 1h, a number of seconds, or -1 to stay loaded"
    assert problems(tmp_path, text) == [
        f"5: component.keep_alive: {expected}, got '5 minutes'",
        f"7: component.options.keep_alive: {expected}, got '-'",
    ]


def test_bad_allowed_hosts_and_write_timeout_are_located(tmp_path: Path) -> None:
    text = COMPONENT + textwrap.dedent(
        """\
        controller:
          write_timeout: soon
          adapter:
            port: 8080
            allowed_hosts:
              - my.box.lan
              - http://my.box.lan:8080
          webui:
            allowed_hosts: ["*.box.lan", "box:1"]
        """
    )
    hint = (
        "is not a host name: write a name like my.box.lan, *.box.lan for every name under "
        "a domain, an IP address, or * for any, without a scheme, port or path"
    )
    start = COMPONENT.count("\n")
    assert problems(tmp_path, text) == [
        f"{start + 1}: controller.write_timeout: expected a duration like 30s, 10m or 1h, "
        "got 'soon'",
        f"{start + 6}: controller.adapter.allowed_hosts[1]: 'http://my.box.lan:8080' {hint}",
        f"{start + 8}: controller.webui.allowed_hosts[1]: 'box:1' {hint}",
    ]


def test_allowed_hosts_and_origins_may_be_written_on_the_controller(tmp_path: Path) -> None:
    text = COMPONENT + "controller:\n  port: 8080\n  allowed_hosts: [my.box.lan]\n"
    adapter = config_of(tmp_path, text).controller.adapters[0]
    assert (adapter.allowed_hosts, adapter.origins) == (["my.box.lan"], None)
