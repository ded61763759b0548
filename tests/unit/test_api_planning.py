"""Plans for requests: the bounded cache, resuming, and a mid-stream fault striking once."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from llmstream.api.planning import CACHE_SIZE, cache_info, plan_for
from llmstream.simulator import (
    Message,
    ResumeError,
    StreamRequest,
    Token,
    Tokens,
    event_id,
    parse_faults,
    plan_stream,
)


def request(prompt: str = "Explain caching", **options: object) -> StreamRequest:
    return StreamRequest(model="instant", messages=(Message("user", prompt),), seed=3, **options)  # type: ignore[arg-type]


def test_identical_requests_share_one_plan() -> None:
    first = plan_for(request())
    hits = cache_info().hits
    again = plan_for(request())  # equal, not the same object: the cache keys on the request's value
    assert again is first
    assert cache_info().hits == hits + 1
    assert plan_for(request("Explain caching!")) is not first
    assert cache_info().maxsize == CACHE_SIZE


def test_a_large_request_is_planned_afresh_not_cached() -> None:
    big = request("word " * 20_000)  # 100,000 characters: above what the cache holds
    assert plan_for(big) is not plan_for(big)
    assert plan_for(big) == plan_stream(big)


def test_resuming_skips_what_the_client_has() -> None:
    full = plan_for(request())
    resumed = plan_for(request(), event_id(full.stream_key, 9))
    assert [t.index for t in resumed.tokens] == [t.index for t in full.tokens[10:]]
    assert resumed.tokens[0].due_ms == 0
    assert plan_for(request(), "") is full
    with pytest.raises(ResumeError, match="different request"):
        plan_for(request("another prompt"), event_id(full.stream_key, 9))


@pytest.mark.parametrize("kind", ["error", "truncate", "reset"])
def test_a_mid_stream_fault_strikes_once(kind: str) -> None:
    faulty = request(faults=parse_faults(f"{kind}_after:8"))
    plan = plan_for(faulty)
    assert (len(plan.tokens), plan.ending) == (8, kind)
    # Resumed before the fault point: the fault is still ahead, and strikes.
    early = plan_for(faulty, event_id(plan.stream_key, 3))
    assert ([t.index for t in early.tokens], early.ending) == ([4, 5, 6, 7], kind)
    # Resumed holding every token before the fault: it has struck; the rest and the normal end follow.
    late = plan_for(faulty, event_id(plan.stream_key, 7))
    assert late.ending == "finish"
    assert [t.text for t in late.tokens] == [t.text for t in plan.completion[8:]]
    assert late.end_ms == late.tokens[-1].due_ms


def test_a_fault_at_the_very_end_also_strikes_once() -> None:
    whole = plan_for(request())
    n = len(whole.completion)
    faulty = request(faults=parse_faults(f"error_after:{n}"))
    plan = plan_for(faulty)
    assert (len(plan.tokens), plan.ending) == (n, "error")
    resumed = plan_for(faulty, event_id(plan.stream_key, n - 1))
    assert (resumed.tokens, resumed.ending) == ((), "finish")


def test_the_fault_tally_counts_what_strikes_in_each_response() -> None:
    from llmstream.api.fault_metrics import FaultTally

    tally = FaultTally()
    tally.record(plan_for(request(faults=parse_faults("rate_limit"))), streamed=True)
    faulty = request(faults=parse_faults("stall:2:5,stall:30:5,slow_first_token:5,reset_after:20"))
    plan = plan_for(faulty)
    tally.record(plan, streamed=True)
    # Resumed after token 9: the first stall and the slow first token are behind, the reset ahead.
    tally.record(plan_for(faulty, event_id(plan.stream_key, 9)), streamed=True)
    tally.record(plan, streamed=False)  # a JSON answer: it fails at the fault; stalls only delay it
    counts = {kind: n for kind, n in tally.counts.items() if n}
    assert counts == {"rate_limit": 1, "reset_after": 3, "stall": 1, "slow_first_token": 1}
    family = next(iter(tally.collect()))
    assert family.name == "llmstream_faults_injected"


class _TokensNotToBeWalked(Tokens):
    def __iter__(self) -> Iterator[Token]:
        raise AssertionError("the tally walked the plan's tokens")


def test_the_fault_tally_does_not_make_a_token_object_per_token() -> None:
    # Regression: it built a set of every token's index per response, one Token object per token (an
    # eighth of the server's CPU in the unpaced bench).
    from llmstream.api.fault_metrics import FaultTally

    plan = plan_for(request(faults=parse_faults("stall:2:5,slow_first_token:5")))
    t = plan.tokens
    plan = dataclasses.replace(plan, tokens=_TokensNotToBeWalked(t.texts, t.due_ms, t.kinds, first=t.first))
    tally = FaultTally()
    tally.record(plan, streamed=True)
    assert (tally.counts["stall"], tally.counts["slow_first_token"]) == (1, 1)
