"""A running server, asked from another process: where its API is, and what
it has loaded (`GET {base_path}/models`), for `model-compose models`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from runtime.config import ComposeConfig
from runtime.errors import RuntimeFailure, UserError
from runtime.server.serve import endpoint, local_url

# A server on this machine answers at once; one that does not is not there.
TIMEOUT = httpx.Timeout(10.0, connect=2.0)


@dataclass(frozen=True)
class ServerAddress:
    api_url: str  # the model-compose API's root, e.g. http://127.0.0.1:8080/api
    api_key: str | None = None


def address_of(config: ComposeConfig) -> ServerAddress:
    """Where `model-compose up` serves this configuration (the first adapter),
    with its API key."""
    host, port, base_path = endpoint(config, None, None)
    return ServerAddress(local_url(host, port) + base_path, config.controller.api_key)


def loaded_models(address: ServerAddress) -> dict[str, Any] | None:
    """The server's `GET {base_path}/models` answer; None when nothing
    listens there."""
    url = f"{address.api_url}/models"
    headers = {"Authorization": f"Bearer {address.api_key}"} if address.api_key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=TIMEOUT)
    except (httpx.ConnectError, httpx.ConnectTimeout):
        return None
    except httpx.HTTPError as error:
        raise RuntimeFailure(f"the server at {address.api_url} did not answer: {error}") from None
    if response.status_code == 401:
        raise UserError(
            f"the server at {address.api_url} needs its API key: pass --api-key, set "
            "MODEL_COMPOSE_API_KEY, or name its compose file with -f"
        )
    try:
        body = response.json() if response.status_code == 200 else None
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("models"), list):
        raise RuntimeFailure(
            f"{url} answered {response.status_code} without a list of models: is it a "
            "model-compose server? (give its API's URL with --url, base path included)"
        )
    return body
