"""`output_schema:` in workflows, on the real embedded model: the action's
result is the parsed JSON, valid against the schema, so later jobs and the
workflow's output bind its fields; a schema from a binding is checked when
it renders; an answer cut before its JSON ends is an error that says so."""

from __future__ import annotations

import jsonschema
import pytest

from runtime.errors import InputError, RuntimeFailure

CAT = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "color": {"enum": ["black", "white", "orange", "grey"]},
        "age": {"type": "integer"},
    },
    "required": ["name", "color", "age"],
}

TWO_JOBS = """\
workflow:
  output:
    name: ${jobs.describe.output.name}
    color: ${output.color}
    sentence: ${jobs.sentence.output}
  jobs:
    - id: describe
      component: cat
      input: {animal: "${input.animal}"}
    - id: sentence
      component: writer
      depends_on: [describe]
      input:
        prompt: "${jobs.describe.output.name} is a ${jobs.describe.output.color} cat who"
    - id: color
      component: cat
      depends_on: [sentence]
      input: {animal: "${jobs.describe.output.name}"}
components:
  - id: cat
    type: model
    task: chat-completion
    model: HuggingFaceTB/SmolLM2-135M-Instruct
    action:
      messages:
        - role: user
          content: Describe a ${input.animal} in JSON with keys name, color and age.
      max_output_length: 120
      streaming: true
      params:
        do_sample: false
      output_schema:
        type: object
        properties:
          name: {type: string, maxLength: 20}
          color: {enum: [black, white, orange, grey]}
          age: {type: integer}
        required: [name, color, age]
  - id: writer
    type: model
    task: text-generation
    model: HuggingFaceTB/SmolLM2-135M-Instruct
    prompt: ${input.prompt}
    max_output_length: 6
    params:
      do_sample: false
"""

ONE_JOB = """\
component:
  type: model
  task: {task}
  model: HuggingFaceTB/SmolLM2-135M-Instruct
  {what}
  max_output_length: ${{input.max_tokens as integer | 120}}
  output_schema: {schema}
  params:
    do_sample: false
"""
CHAT = "messages: [{role: user, content: '${input.question}'}]"


async def test_later_jobs_and_the_workflow_output_bind_the_parsed_fields(harness, recorder):
    compose = harness(TWO_JOBS)
    output = await compose.run(None, {"animal": "cat"}, listener=recorder)
    assert output["color"] in CAT["properties"]["color"]["enum"]
    assert isinstance(output["name"], str) and output["name"]
    assert output["sentence"].startswith(f"{output['name']} is a ")
    describe, _, color = compose.engine.requests
    assert describe.grammar is not None and color.grammar == describe.grammar
    assert (
        color.messages[0].content
        == f"Describe a {output['name']} in JSON with keys name, color and age."
    )
    # What streamed is the JSON text whose parsed value the job gave.
    assert recorder.results[0][1].text in recorder.text


async def test_a_text_generation_result_is_the_parsed_continuation_without_the_prompt(harness):
    compose = harness(
        ONE_JOB.format(
            task="text-generation",
            what="prompt: 'A cat as JSON:'",
            schema="{type: object, properties: {name: {type: string, maxLength: 12}}}",
        )
    )
    output = await compose.run(None, {})
    assert isinstance(output, dict) and set(output) <= {"name"}


async def test_a_schema_from_a_binding_is_used_and_checked_when_it_renders(harness):
    compose = harness(
        ONE_JOB.format(task="chat-completion", what=CHAT, schema="${input.schema as object}")
    )
    output = await compose.run(None, {"question": "Describe a cat.", "schema": CAT})
    jsonschema.validate(output, CAT)
    with pytest.raises(InputError, match="'minimum' is not supported"):
        await compose.run(None, {"question": "Hi", "schema": {"type": "integer", "minimum": 1}})


async def test_an_answer_cut_before_its_json_ends_says_to_raise_the_limit(harness):
    compose = harness(
        ONE_JOB.format(task="chat-completion", what=CHAT, schema="${input.schema as object}")
    )
    with pytest.raises(RuntimeFailure, match=r"cut after 3 tokens.*raise max_output_length"):
        await compose.run(None, {"question": "Describe a cat.", "schema": CAT, "max_tokens": 3})


async def test_a_schema_binding_left_out_means_free_text(harness):
    compose = harness(
        ONE_JOB.format(task="chat-completion", what=CHAT, schema="${input.schema as object | null}")
    )
    output = await compose.run(None, {"question": "Say hi.", "max_tokens": 5})
    assert isinstance(output, str)
    assert compose.engine.requests[0].grammar is None
