"""ModelComponents: model load settings, one load per model, the concurrency
limit, dispatch by task."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.engine.types import ModelSpec
from runtime.errors import NotFoundError
from runtime.workflow import RunContext

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def batch_of(count: int, limit: str) -> str:
    return f"""
    workflow:
      jobs:
        - id: gen
          repeat_count: {count}
          input:
            prompt: ${{input.prompts[${{index}}]}}
    component:
      type: model
      task: text-generation
      model: {MODEL}
      {limit}
      text: ${{input.prompt}}
      params:
        max_output_length: 4
        do_sample: false
    """


async def test_max_concurrent_count_1_runs_one_generation_at_a_time(harness):
    compose = harness(batch_of(3, "max_concurrent_count: 1"))
    output = await compose.run(None, {"prompts": ["One", "Two", "Three"]})
    assert len(output) == 3
    assert len(compose.engine.requests) == 3
    assert compose.engine.most_in_flight == 1


async def test_max_concurrent_count_2_lets_two_generations_in_at_once(harness):
    compose = harness(batch_of(3, "max_concurrent_count: 2"))
    await compose.run(None, {"prompts": ["One", "Two", "Three"]})
    assert compose.engine.most_in_flight == 2


async def test_without_max_concurrent_count_every_repeat_is_submitted_at_once(harness):
    compose = harness(batch_of(3, ""))
    await compose.run(None, {"prompts": ["One", "Two", "Three"]})
    assert compose.engine.most_in_flight == 3


async def test_the_model_is_loaded_once_even_when_repeats_start_together(harness):
    compose = harness(batch_of(3, ""))
    await compose.run(None, {"prompts": ["One", "Two", "Three"]})
    await compose.run(None, {"prompts": ["Four", "Five", "Six"]})
    assert compose.loads == 1


async def test_two_components_on_the_same_model_share_one_load(harness):
    compose = harness(
        f"""
        workflows:
          - id: chat
            default: true
            job:
              component: chat
          - id: text
            job:
              component: text
        components:
          - id: chat
            type: model
            task: chat-completion
            model: {MODEL}
            action:
              messages:
                - role: user
                  content: ${{input.user_prompt}}
              max_output_length: 4
              params:
                do_sample: false
          - id: text
            type: model
            task: text-generation
            model: {MODEL}
            text: ${{input.prompt}}
            max_output_length: 4
            params:
              do_sample: false
        """
    )
    answer = await compose.run("chat", {"user_prompt": "Hello"})
    text = await compose.run("text", {"prompt": "Hello"})
    assert isinstance(answer, str)
    assert text.startswith("Hello")
    assert compose.loads == 1
    chat_request, text_request = compose.engine.requests
    assert chat_request.messages is not None and chat_request.prompt is None
    assert text_request.prompt == "Hello" and text_request.messages is None


async def test_preload_loads_the_components_that_ask_for_it(harness):
    compose = harness(batch_of(1, "preload: true"))
    await compose.components.preload()
    assert compose.loads == 1
    assert compose.engine.requests == []


async def test_preload_skips_components_that_do_not_ask_for_it(harness):
    compose = harness(batch_of(1, "preload: false"))
    await compose.components.preload()
    assert compose.loads == 0


async def test_an_unknown_component_is_not_found(harness):
    compose = harness(batch_of(1, ""))
    with pytest.raises(NotFoundError, match=r"^unknown component 'nope'$"):
        await compose.components.run_action("nope", None, {}, RunContext(), "job")


# -- model_spec: a component's file and load settings (no model needed) -------------


def spec_of(compose, tmp_path: Path, settings: str) -> ModelSpec:
    from runtime.tasks.components import model_spec

    (tmp_path / "tiny.gguf").write_bytes(b"")
    config = compose(
        f"""
        component:
          type: model
          task: text-generation
          model: ./tiny.gguf
          text: ${{input.prompt}}
          {settings}
        """
    )
    return model_spec(config.components[0], Path(config.base_dir))


def test_a_relative_model_path_is_resolved_from_the_compose_files_folder(compose, tmp_path):
    spec = spec_of(compose, tmp_path, "")
    assert spec == ModelSpec(path=str((tmp_path / "tiny.gguf").resolve()), parallel=4)


def test_llama_cpp_knobs_are_read_at_component_level(compose, tmp_path):
    spec = spec_of(
        compose,
        tmp_path,
        "context_length: 2048\n          n_batch: 128\n          n_threads: 2\n"
        "          n_gpu_layers: 0\n          device: cpu",
    )
    assert (spec.n_ctx, spec.n_batch, spec.n_threads, spec.n_gpu_layers, spec.device) == (
        2048,
        128,
        2,
        0,
        "cpu",
    )


def test_llama_cpp_knobs_are_read_under_options(compose, tmp_path):
    spec = spec_of(
        compose,
        tmp_path,
        "options:\n            n_ctx: 1024\n            n_batch: 64\n"
        "            n_threads: 3\n            n_gpu_layers: 10",
    )
    assert (spec.n_ctx, spec.n_batch, spec.n_threads, spec.n_gpu_layers) == (1024, 64, 3, 10)


def test_component_level_knobs_win_over_options(compose, tmp_path):
    spec = spec_of(
        compose,
        tmp_path,
        "n_ctx: 512\n          n_gpu_layers: 0\n"
        "          options:\n            n_ctx: 1024\n            n_gpu_layers: 10",
    )
    assert (spec.n_ctx, spec.n_gpu_layers) == (512, 0)
