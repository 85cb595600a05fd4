"""The form a workflow gets from its inferred inputs: one widget per type,
defaults filled in, required inputs checked before anything runs."""

from __future__ import annotations

from nicegui import ui

from tests.conftest import example_yaml
from tests.webui.conftest import OpenPage

EVERY_TYPE = """
    workflow:
      title: Every input type
      description: One input of each type.
    component:
      type: model
      task: text-generation
      model: HuggingFaceTB/SmolLM2-135M-Instruct
      action:
        text: >-
          ${input.a} ${input.b as string} ${input.c as number | 0.5}
          ${input.d as integer | 3} ${input.e as boolean | true}
          ${input.f as select/x,y,z | y} ${input.g as json} ${input.h as list}
          ${input.i as object} ${input.j as number[]} ${input.k as list | [1, 2]}
        max_output_length: 4
"""


async def test_every_input_type_gets_its_widget(open_page: OpenPage) -> None:
    async with open_page(EVERY_TYPE, load=False) as page:
        await page.user.should_see("Every input type")
        await page.user.should_see("One input of each type.")
        kinds = {
            "a": ui.textarea,
            "b": ui.input,
            "c": ui.number,
            "d": ui.number,
            "e": ui.switch,
            "f": ui.select,
            "g": ui.textarea,
            "h": ui.textarea,
            "i": ui.textarea,
            "j": ui.textarea,
            "k": ui.textarea,
        }
        for name, kind in kinds.items():
            assert isinstance(page.element(f"input-{name}"), kind), name
        # `string` is one line: a plain input, not a text area.
        assert not isinstance(page.element("input-b"), ui.textarea)
        assert page.element("input-f").options == ["x", "y", "z"]
        assert page.element("input-d").props["step"] == 1


async def test_defaults_are_filled_in_and_required_inputs_are_marked(open_page: OpenPage) -> None:
    async with open_page(EVERY_TYPE, load=False) as page:
        assert page.value("input-a") == ""
        assert page.value("input-c") == 0.5
        assert page.value("input-d") == 3
        assert page.value("input-e") is True
        assert page.value("input-f") == "y"
        assert page.value("input-k") == "[1, 2]"
        assert page.element("input-a").props["label"] == "a *"
        assert page.element("input-c").props["label"] == "c"
        assert "required" in page.element("input-g").props["hint"]
        assert "JSON list of number" in page.element("input-j").props["hint"]


async def test_a_missing_required_input_blocks_the_run_and_says_which(
    open_page: OpenPage,
) -> None:
    async with open_page(EVERY_TYPE, load=False) as page:
        started = []
        page.service.start_run = lambda *args, **kwargs: started.append(args)  # type: ignore[method-assign]
        page.user.find(marker="input-b").type("one line")
        page.user.find(marker="run").click()
        await page.user.should_see("Check the inputs first: a, g, h, i, j")
        assert page.element("input-a").error == "required"
        assert page.element("input-b").error is None
        assert started == []


async def test_json_inputs_must_parse_as_json_of_their_kind(open_page: OpenPage) -> None:
    async with open_page(EVERY_TYPE, load=False) as page:
        page.user.find(marker="input-g").type("{not json")
        page.user.find(marker="input-h").type('{"a": 1}')
        page.user.find(marker="input-i").type("[1]")
        assert page.element("input-g").error.startswith("not valid JSON")
        assert page.element("input-h").error == 'must be a JSON list, like ["a", "b"]'
        assert page.element("input-i").error.startswith("must be a JSON object")
        page.user.find(marker="run").click()
        await page.user.should_see("Check the inputs first")


# The seed's chat workflow on the embedded model, with a short answer.
SEED_CHAT = example_yaml("quickstart", ("max_output_length: 512", "max_output_length: 8"))


async def test_the_seeds_system_prompt_is_marked_optional_and_a_run_without_it_answers(
    open_page: OpenPage,
) -> None:
    async with open_page(SEED_CHAT) as page:
        system, user = page.element("input-system_prompt"), page.element("input-user_prompt")
        assert (system.props["label"], system.props["hint"]) == ("system_prompt", "text, optional")
        assert (user.props["label"], user.props["hint"]) == ("user_prompt *", "text, required")
        page.user.find(marker="input-user_prompt").type("Hi!")
        page.user.find(marker="run").click()
        stats = await page.until(lambda: page.text("stats"))
        assert stats.startswith("finish: ")
        assert page.text("output").strip()
        assert page.text("error") == ""
