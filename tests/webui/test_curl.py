"""The API panel's curl command."""

from __future__ import annotations

import json
import shlex

from runtime.webui.curl import curl_command


def test_the_command_posts_the_input_to_the_workflows_runs_route() -> None:
    command = curl_command("http://127.0.0.1:8080/api/", "chat", {"user_prompt": "Hi"}, False)
    assert command == (
        "curl -X POST http://127.0.0.1:8080/api/workflows/chat/runs \\\n"
        '  -H "Content-Type: application/json" \\\n'
        """  -d '{"input": {"user_prompt": "Hi"}}'"""
    )


def test_quotes_and_unicode_survive_the_shell() -> None:
    input = {"q": 'it\'s "quoted" $HOME `x` é'}
    command = curl_command("http://h", "w", input, False)
    words = shlex.split(command.replace("\\\n", " "))
    assert json.loads(words[-1]) == {"input": input}


def test_an_api_key_is_read_from_the_environment_never_printed() -> None:
    command = curl_command("http://h", "a b/c", {}, True)
    assert '-H "Authorization: Bearer $MODEL_COMPOSE_API_KEY"' in command
    assert "/workflows/a%20b%2Fc/runs" in command
