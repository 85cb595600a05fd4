"""The pass/fail checks of a load or soak run, each with the evidence a
person needs when it fails."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from scripts.reliability.clients import Outcome
from scripts.reliability.reference import key
from scripts.reliability.server_state import is_idle, log_failures
from scripts.reliability.ties import TIE_LOGITS, Referee

SHOWN = 5  # failures quoted per check


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _examples(items: list[str]) -> str:
    more = f" (and {len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return "; ".join(items[:SHOWN]) + more


def no_failed_requests(outcomes: list[Outcome]) -> Check:
    """No 5xx but the retried 503 + Retry-After, no cut stream, no error event."""
    failed = [f"{o.endpoint} #{i}: {o.problem}" for i, o in enumerate(outcomes) if o.problem]
    # (None: a client that hung up before the response began.)
    statuses = Counter(o.status for o in outcomes if o.status not in (200, None))
    refusals = sum(o.refusals for o in outcomes)
    detail = (
        f"{len(outcomes) - len(failed)}/{len(outcomes)} without a problem; "
        f"{refusals} refusals (503 + Retry-After) retried"
    )
    if statuses:
        detail += f"; final statuses other than 200: {dict(statuses)}"
    if failed:
        detail += f"; {_examples(failed)}"
    return Check("no failed request (no 5xx but a retried 503 + Retry-After)", not failed, detail)


def every_request_answered(outcomes: list[Outcome]) -> Check:
    """Every request not cancelled on purpose got its whole answer."""
    kept = [(i, o) for i, o in enumerate(outcomes) if o.cancel is None]
    missing = [i for i, o in kept if not o.answered]
    return Check(
        "every request not cancelled on purpose was accepted and finished",
        not missing,
        f"{len(kept) - len(missing)}/{len(kept)} finished"
        + (f"; not: requests {missing[:20]}" if missing else ""),
    )


def _parting(o: Outcome, alone: Outcome, referee: Referee) -> float | None:
    """None when `o` says the same as its reference; else the logit gap where
    they part (math.inf: they do not part at a plausible token)."""
    if o.text == alone.text:
        return None
    return referee.divergence(
        o.prompt, o.text, o.finish_reason == "stop", alone.text, alone.finish_reason == "stop"
    ).gap


def answers_match(
    outcomes: list[Outcome], references: dict[str, Outcome], referee: Referee
) -> Check:
    """Every finished answer is whole (it stopped, or has all its tokens) and
    is its prompt's reference, or parts from it only at a near-tie (ties.py)."""
    checked, exact, gaps, wrong = 0, 0, [], []
    for i, o in enumerate(outcomes):
        if not o.answered:
            continue
        checked += 1
        alone = references[key(o.endpoint, o.prompt)]
        whole = o.finish_reason == "stop" or o.completion_tokens == o.max_tokens
        gap = _parting(o, alone, referee)
        if whole and gap is None and o.finish_reason == alone.finish_reason:
            exact += 1
        elif whole and gap is not None and gap <= TIE_LOGITS:
            gaps.append(gap)
        else:
            wrong.append(
                f"{o.endpoint} #{i} (prompt {o.prompt}): {o.text!r} ({o.finish_reason}, "
                f"{o.completion_tokens} tokens) vs alone {alone.text!r} ({alone.finish_reason})"
                + (f", parting {gap:.3g} logits apart" if gap else "")
            )
    detail = f"{exact}/{checked} identical"
    if gaps:
        detail += (
            f", {len(gaps)} parted from it at a near-tie (largest gap {max(gaps):.3f} logits, "
            f"tolerance {TIE_LOGITS})"
        )
    if wrong:
        detail += f"; wrong: {_examples(wrong)}"
    return Check(
        "every finished answer is whole and the same as its prompt's alone (greedy)",
        not wrong and checked > 0,
        detail,
    )


def cancelled_are_prefixes(
    outcomes: list[Outcome], references: dict[str, Outcome], referee: Referee
) -> Check:
    """What a cancelled request received is the start of its answer alone
    (or parts from it only at a near-tie)."""
    cancelled = [(i, o) for i, o in enumerate(outcomes) if o.cancel and not o.problem]
    wrong = []
    for i, o in cancelled:
        alone = references[key(o.endpoint, o.prompt)]
        if alone.text.startswith(o.text):
            continue
        parting = referee.divergence(
            o.prompt, o.text, False, alone.text, alone.finish_reason == "stop"
        )
        if parting.gap > TIE_LOGITS:
            wrong.append(f"{o.endpoint} #{i} ({o.cancel}): {o.text!r}")
    return Check(
        "every cancelled request received the start of its answer, nothing else",
        not wrong,
        f"{len(cancelled) - len(wrong)}/{len(cancelled)} cancelled requests"
        + (f"; {_examples(wrong)}" if wrong else ""),
    )


def idle_at_end(status: dict[str, Any] | None) -> Check:
    if status is None:
        return Check("all slots free and the queue empty afterwards", False, "no answer")
    models = ", ".join(
        f"{m['name']}: {m['busy']}/{m['slots']} slots busy, {m['waiting']} waiting"
        for m in status["models"]
    )
    return Check(
        "all slots free and the queue empty afterwards",
        is_idle(status),
        f"{models}; {status['running_tasks']} runs in progress",
    )


def rss_stable(warm_bytes: int, end_bytes: int, tolerance: float) -> Check:
    change = (end_bytes - warm_bytes) / warm_bytes if warm_bytes else float("nan")
    return Check(
        f"server RSS within {tolerance:.0%} of its value after warm-up",
        abs(change) <= tolerance,
        f"{warm_bytes / 2**20:.1f} MB after warm-up → {end_bytes / 2**20:.1f} MB ({change:+.2%})",
    )


def server_alive(alive: bool, exit_code: int | None) -> Check:
    return Check(
        "the server never crashed",
        alive,
        "running at the end" if alive else f"exited during the run ({exit_code})",
    )


def clean_exit(exit_code: int | None) -> Check:
    return Check("SIGTERM afterwards: exit code 0", exit_code == 0, f"exit code {exit_code}")


def clean_log(log: str) -> Check:
    failures = log_failures(log)
    return Check(
        "no traceback in the server's log",
        not failures,
        f"{len(failures)} found" + (f": {_examples(failures)}" if failures else ""),
    )
