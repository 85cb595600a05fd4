"""A workflow's input schema, inferred from the bindings that read the run's
input, and the required-input check."""

from __future__ import annotations

import json

import pytest

from runtime.binding import InputField
from runtime.errors import InputError
from runtime.workflow import check_required_inputs, workflow_inputs
from tests.conftest import CHAT_COMPONENT, example_yaml


def fields_of(config, workflow_id=None) -> list[InputField]:
    return workflow_inputs(config, config.workflow(workflow_id))


def test_a_workflow_without_jobs_asks_for_what_its_component_reads(compose):
    config = compose("workflow:\n  title: Generate Chat Messages\n" + CHAT_COMPONENT)
    assert fields_of(config) == [
        InputField("system_prompt", "text", None, None, False),
        InputField("user_prompt", "text", None, None, True),
    ]


def chat(*messages: tuple[str, str], output: str = "${output}") -> str:
    lines = "".join(
        f"\n          - role: {role}\n            content: {json.dumps(content)}"
        for role, content in messages
    )
    return f"""
        workflow:
          job:
            output: {json.dumps(output)}
        component:
          type: model
          task: chat-completion
          model: ./unused.gguf
          messages:{lines}
        """


def required(config) -> dict[str, bool]:
    return {field.name: field.required for field in fields_of(config)}


def test_the_seeds_system_prompt_is_optional_and_its_user_prompt_required(compose):
    # Seed 000's input table: system_prompt "Required: No", user_prompt "Yes".
    config = compose(example_yaml("chat-completion"))
    assert required(config) == {"system_prompt": False, "user_prompt": True}
    check_required_inputs(fields_of(config), {"user-prompt": "Hi"})
    with pytest.raises(InputError, match="missing required input 'user_prompt'"):
        check_required_inputs(fields_of(config), {"system_prompt": "Be brief."})


def test_only_a_system_messages_whole_content_can_be_left_out(compose):
    config = compose(
        chat(
            ("system", "${input.persona}"),
            ("system", "Answer in ${input.language}."),  # the text around it would stay
            ("user", "${input.question}"),
            ("assistant", "${input.earlier_answer}"),
        )
    )
    assert required(config) == {
        "persona": False,
        "language": True,
        "question": True,
        "earlier_answer": True,
    }


def test_a_system_prompt_read_anywhere_else_too_stays_required(compose):
    config = compose(
        chat(("system", "${input.persona}"), ("user", "hi"), output="${input.persona}")
    )
    assert required(config) == {"persona": True}


def test_a_binding_inside_an_omittable_system_prompt_counts_as_usual(compose):
    config = compose(
        chat(("system", "${input.persona | ${input.fallback}}"), ("user", "${input.q}"))
    )
    assert required(config) == {"persona": False, "fallback": False, "q": True}
    config = compose(chat(("system", "${input.personas[${input.i}]}"), ("user", "hi")))
    assert required(config) == {"personas": False, "i": True}


def test_a_job_that_passes_the_input_through_asks_for_what_its_component_reads(compose):
    config = compose(
        """
        workflow:
          job:
            input: ${input}
            output:
              generated: ${output}
        component:
          type: model
          task: text-generation
          model: ./unused.gguf
          text: ${input.prompt as text}
          params:
            temperature: ${input.temperature as number | 0.7}
        """
    )
    assert fields_of(config) == [
        InputField("prompt", "text", None, None, True),
        InputField("temperature", "number", None, 0.7, False),
    ]


def test_a_job_with_its_own_input_mapping_hides_the_components_bindings(compose):
    config = compose(
        """
        workflow:
          jobs:
            - id: gen
              input:
                prompt: "Write about ${input.topic}"
        component:
          type: model
          task: text-generation
          model: ./unused.gguf
          text: ${input.prompt}
        """
    )
    assert [field.name for field in fields_of(config)] == ["topic"]


def test_the_batch_snippet_asks_for_the_prompts_and_the_batch_size(compose):
    config = compose(example_yaml("batch-generation"))
    fields = {field.name: field for field in fields_of(config)}
    assert set(fields) == {"prompts", "batch_size"}
    assert fields["prompts"].type == "json"  # indexed into: structured
    assert fields["prompts"].required and fields["batch_size"].required


def test_a_role_based_workflow_asks_only_for_what_its_input_mapping_reads(compose):
    config = compose(example_yaml("role-based"))
    assert fields_of(config, "customer-support") == [
        InputField("customer_question", "text", None, None, True)
    ]
    assert fields_of(config, "code-reviewer") == [
        InputField("code_to_review", "text", None, None, True)
    ]


def test_bindings_in_job_and_workflow_outputs_count_too(compose):
    config = compose(
        """
        workflow:
          jobs:
            - id: gen
              input:
                prompt: x
              output:
                label: ${input.label | "none"}
          output:
            echo: ${input.echo}
        """
    )
    assert fields_of(config) == [
        InputField("label", "text", None, "none", False),
        InputField("echo", "text", None, None, True),
    ]


def test_an_input_read_only_inside_another_inputs_default_is_optional(compose):
    config = compose(
        """
        workflow:
          title: Template-Based Generation
        component:
          type: model
          task: text-generation
          model: ./unused.gguf
          text: ${input.template | "Generate text about: ${input.topic}"}
        """
    )
    assert [(f.name, f.required) for f in fields_of(config)] == [
        ("template", False),
        ("topic", False),
    ]


def test_the_required_check_names_the_first_missing_input():
    fields = [
        InputField("system_prompt", required=False),
        InputField("user_prompt"),
        InputField("tone"),
    ]
    with pytest.raises(InputError) as error:
        check_required_inputs(fields, {"system_prompt": "x"})
    assert str(error.value) == "missing required input 'user_prompt'"
    assert error.value.name == "user_prompt"


@pytest.mark.parametrize(
    "given", [{"user_prompt": "hi"}, {"user-prompt": "hi"}], ids=["underscore", "dash"]
)
def test_the_required_check_treats_dashes_and_underscores_alike(given):
    check_required_inputs([InputField("user_prompt")], given)
    check_required_inputs([InputField("user-prompt")], given)


def test_the_required_check_counts_falsy_values_as_given():
    fields = [InputField("a"), InputField("b"), InputField("c"), InputField("d")]
    check_required_inputs(fields, {"a": "", "b": 0, "c": False, "d": []})
