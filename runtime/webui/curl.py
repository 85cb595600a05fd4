"""The `curl` command that runs the same input through the REST API."""

from __future__ import annotations

import json
import shlex
from typing import Any
from urllib.parse import quote

# The key itself is never shown: the command reads it from the environment,
# under the name the examples and the README use.
API_KEY_VARIABLE = "MODEL_COMPOSE_API_KEY"


def curl_command(api_url: str, workflow_id: str, input: dict[str, Any], api_key: bool) -> str:
    """`curl -X POST {api_url}/workflows/{id}/runs ... -d '{"input": {...}}'`,
    one option per line, quoted for a POSIX shell."""
    url = f"{api_url.rstrip('/')}/workflows/{quote(workflow_id, safe='')}/runs"
    body = json.dumps({"input": input}, ensure_ascii=False)
    lines = [f"curl -X POST {shlex.quote(url)}", '-H "Content-Type: application/json"']
    if api_key:
        lines.append(f'-H "Authorization: Bearer ${API_KEY_VARIABLE}"')
    lines.append(f"-d {shlex.quote(body)}")
    return " \\\n  ".join(lines)
