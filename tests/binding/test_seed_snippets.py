"""Every binding in the two seed documents, rendered as their YAML reads them."""

from typing import Any

from runtime.binding import InputField, infer_input_fields, iter_bindings, render

# The chat-completion seed's basic component, as YAML loads it.
CHAT = {
    "messages": [
        {"role": "system", "content": "${input.system_prompt}"},
        {"role": "user", "content": "${input.user_prompt}"},
    ],
    "params": {"temperature": "${input.temperature as number | 0.7}"},
}

# The role-based system prompt: a `|` block scalar, so it ends with a newline.
ROLE_PROMPT = (
    'You are a ${input.role | "helpful assistant"}.\n'
    "${input.additional_instructions}\n"
    'Always be ${input.tone | "professional and friendly"}.\n'
)


def test_the_seed_curl_example_fills_system_prompt_from_system_dash_prompt() -> None:
    scope = {"input": {"system-prompt": "You are terse.", "user-prompt": "Hi"}}
    assert render(CHAT, scope) == {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
        ],
        "params": {"temperature": 0.7},
    }


def test_the_temperature_sent_as_text_becomes_a_float() -> None:
    scope = {"input": {"temperature": "0.2"}}
    assert render("${input.temperature as number | 0.7}", scope) == 0.2


def test_multi_turn_history_is_read_by_index() -> None:
    messages = [
        {"role": "system", "content": '${input.system_prompt | "You are a helpful assistant."}'},
        {"role": "user", "content": "${input.conversation_history[0].content}"},
        {"role": "assistant", "content": "${input.conversation_history[0].response}"},
        {"role": "user", "content": "${input.user_prompt}"},
    ]
    scope = {
        "input": {
            "conversation_history": [{"content": "Hi", "response": "Hello!"}],
            "user_prompt": "How are you?",
        }
    }
    assert [m["content"] for m in render(messages, scope)] == [
        "You are a helpful assistant.",
        "Hi",
        "Hello!",
        "How are you?",
    ]


def test_the_role_prompt_uses_defaults_and_leaves_missing_lines_empty() -> None:
    assert render(ROLE_PROMPT, {"input": {}}) == (
        "You are a helpful assistant.\n\nAlways be professional and friendly.\n"
    )


def test_the_role_prompt_takes_every_value_given() -> None:
    scope = {"input": {"role": "pirate", "additional_instructions": "Say arr.", "tone": "salty"}}
    assert render(ROLE_PROMPT, scope) == "You are a pirate.\nSay arr.\nAlways be salty.\n"


def test_workflow_jobs_pass_inputs_on_under_new_names() -> None:
    jobs = {"user_prompt": "${input.customer_question}"}
    assert render(jobs, {"input": {"customer_question": "Where is my order?"}}) == {
        "user_prompt": "Where is my order?"
    }


def test_the_text_generation_prompt_is_cast_to_text() -> None:
    assert render("${input.prompt as text}", {"input": {"prompt": "Once upon"}}) == "Once upon"
    assert render("${input.prompt as text}", {"input": {"prompt": 42}}) == "42"


def test_generation_params_default_when_not_sent() -> None:
    params = {
        "temperature": "${input.temperature as number | 0.7}",
        "top_p": "${input.top_p as number | 0.9}",
        "do_sample": True,
    }
    assert render(params, {"input": {}}) == {"temperature": 0.7, "top_p": 0.9, "do_sample": True}


def test_the_instruction_template_keeps_its_block_layout() -> None:
    text = "### Instruction:\n${input.instruction}\n\n### Response:\n"
    assert render(text, {"input": {"instruction": "Sum 2+2."}}) == (
        "### Instruction:\nSum 2+2.\n\n### Response:\n"
    )


def test_batch_processing_reads_the_count_and_one_prompt_per_index() -> None:
    scope: dict[str, Any] = {"input": {"batch_size": 2, "prompts": ["a", "b"]}}
    assert render("${input.batch_size}", scope) == 2
    job_input = {"prompt": "${input.prompts[${index}]}"}
    assert [render(job_input, {**scope, "index": i}) for i in range(2)] == [
        {"prompt": "a"},
        {"prompt": "b"},
    ]


def test_the_template_default_is_rendered_from_the_topic() -> None:
    text = '${input.template | "Generate text about: ${input.topic}"}'
    assert render(text, {"input": {"topic": "volcanoes"}}) == "Generate text about: volcanoes"


def test_the_whole_input_and_output_pass_through() -> None:
    scope = {"input": {"a": 1}, "output": {"text": "done"}}
    assert render({"in": "${input}", "out": "${output}"}, scope) == {
        "in": {"a": 1},
        "out": {"text": "done"},
    }


def test_the_seed_chat_components_bindings_name_its_inputs_and_their_types() -> None:
    # Bindings alone; the workflow makes the system prompt optional (its
    # whole message can be left out: tests/workflow/test_inputs.py).
    assert infer_input_fields(iter_bindings(CHAT)) == [
        InputField("system_prompt", "text", None, None, True),
        InputField("user_prompt", "text", None, None, True),
        InputField("temperature", "number", None, 0.7, False),
    ]


def test_the_role_prompt_schema_has_two_optional_fields_and_one_required() -> None:
    assert infer_input_fields(iter_bindings(ROLE_PROMPT)) == [
        InputField("role", "text", None, "helpful assistant", False),
        InputField("additional_instructions", "text", None, None, True),
        InputField("tone", "text", None, "professional and friendly", False),
    ]


def test_the_batch_schema_asks_for_a_count_and_a_json_list() -> None:
    value = {"repeat_count": "${input.batch_size}", "prompt": "${input.prompts[${index}]}"}
    assert infer_input_fields(iter_bindings(value)) == [
        InputField("batch_size", "text", None, None, True),
        InputField("prompts", "json", None, None, True),
    ]
