"""Wrong API keys per client address: five within a minute, then 429 with
Retry-After until the oldest is a minute old; on the API in both shapes."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from runtime.server.rate_limit import FailureLimiter
from tests.server.composes import writer_compose

Client = Callable[..., TestClient]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_failures_in_the_window_make_a_client_wait_for_the_oldest_to_expire() -> None:
    clock = Clock()
    limiter = FailureLimiter(limit=5, window=60, clock=clock)
    for second in range(5):
        assert limiter.retry_after("a") is None
        clock.now = 1000.0 + second * 10
        limiter.fail("a")
    assert limiter.retry_after("a") == 20  # the first failure, at 1000, expires at 1060
    assert limiter.retry_after("b") is None  # per address
    clock.now = 1059.5
    assert limiter.retry_after("a") == 1
    clock.now = 1060.0
    assert limiter.retry_after("a") is None  # one more try...
    limiter.fail("a")
    assert limiter.retry_after("a") == 10  # ...and the next oldest (1010) must expire
    limiter.succeed("a")
    assert limiter.retry_after("a") is None


def test_failures_outside_the_window_do_not_count() -> None:
    clock = Clock()
    limiter = FailureLimiter(limit=5, window=60, clock=clock)
    for _ in range(20):
        limiter.fail("a")
        clock.now += 13  # under five a minute
        assert limiter.retry_after("a") is None


def test_the_api_answers_429_with_retry_after_after_five_wrong_keys(client_for: Client) -> None:
    client = client_for(writer_compose(api_key="secret"))
    clock = Clock()
    client.app.state.key_failures.clock = clock  # type: ignore[attr-defined]
    wrong = {"Authorization": "Bearer wrong"}
    for _ in range(3):  # no key at all: forgotten, not guessed; not counted
        assert client.get("/api/workflows").status_code == 401
    for _ in range(5):
        assert client.get("/api/workflows", headers=wrong).status_code == 401
    refused = client.get("/api/workflows", headers=wrong)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
    assert refused.json() == {
        "error": {
            "type": "rate_limited",
            "message": "too many wrong API keys from this address: try again in 60 s",
        }
    }
    # The right key waits too: a guesser must not learn that a key is right.
    assert client.get("/api/workflows", headers={"Authorization": "Bearer secret"}).status_code == (
        429
    )
    openai = client.get("/v1/models", headers=wrong)
    assert openai.status_code == 429
    assert openai.json()["error"]["code"] == "rate_limit_exceeded"
    assert openai.json()["error"]["message"].startswith("Too many wrong API keys")
    assert client.get("/health").status_code == 200  # open routes stay open
    clock.now += 60
    assert client.get("/api/workflows", headers={"Authorization": "Bearer secret"}).status_code == (
        200
    )
