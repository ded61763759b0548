"""What a request asks of the simulator: `StreamRequest`, validated at construction, and its stream key.

The API layer translates each wire format (native, OpenAI, Anthropic) into a `StreamRequest`;
everything the stream depends on is in it, so a stream is a pure function of it (see plan.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from llmstream.simulator.errors import InvalidRequestError
from llmstream.simulator.faults import DEFAULT_FAULT_POOL, NO_FAULTS, FaultPlan, parse_fault_pool
from llmstream.simulator.profiles import get_profile
from llmstream.simulator.seeding import stable_digest

__all__ = ["MAX_STOP_SEQUENCES", "Message", "StreamRequest", "stream_key"]

MAX_STOP_SEQUENCES = 16  # the APIs allow fewer (OpenAI: 4): the API layer may refuse more
MAX_STOP_LENGTH = 1_000
MAX_TTFT_MS = 600_000.0
MAX_TOKENS_PER_S = 1_000_000.0
MAX_JITTER = 3.0
_SEED_RANGE = (-(2**63), 2**64 - 1)


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message; ``content`` is plain text (the API layer joins content parts)."""

    role: str
    content: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamRequest:
    """Everything a stream depends on. Invalid values raise `InvalidRequestError` (a ValueError).

    ``seed`` defaults to 0, never to a random number: a resumed request must plan the same stream,
    so a caller wanting variety passes its own seed and sends it again when it resumes.
    """

    model: str
    messages: tuple[Message, ...]
    seed: int = 0
    max_tokens: int | None = None  # completion tokens, thinking included (as OpenAI and Anthropic count)
    stop: tuple[str, ...] = ()
    ttft_ms: float | None = None  # overrides: exact time to first token ...
    tokens_per_s: float | None = None  # ... mean rate ...
    jitter: float | None = None  # ... and gap spread (0 = perfectly regular)
    faults: FaultPlan = NO_FAULTS
    fault_rate: float = 0.0  # probability of one drawn fault from fault_pool (seeded, deterministic)
    fault_pool: tuple[str, ...] = field(default=DEFAULT_FAULT_POOL)

    def __post_init__(self) -> None:
        profile = get_profile(self.model)  # UnknownModelError
        # Sequences become tuples so that the request stays hashable and immutable.
        object.__setattr__(self, "messages", tuple(self.messages))
        object.__setattr__(self, "stop", (self.stop,) if isinstance(self.stop, str) else tuple(self.stop))
        if not self.messages:
            raise InvalidRequestError("messages must hold at least one message", param="messages")
        for i, message in enumerate(self.messages):
            if not isinstance(message, Message) or not isinstance(message.content, str):
                raise InvalidRequestError(
                    f"messages[{i}] must be a Message with text content", param="messages"
                )
        if type(self.seed) is not int or not _SEED_RANGE[0] <= self.seed <= _SEED_RANGE[1]:
            raise InvalidRequestError(f"seed must be a 64-bit integer, not {self.seed!r}", param="seed")
        if self.max_tokens is not None and (
            type(self.max_tokens) is not int or not 1 <= self.max_tokens <= profile.max_output_tokens
        ):
            raise InvalidRequestError(
                f"max_tokens must be an integer from 1 to {profile.max_output_tokens} for model "
                f"{self.model!r}, not {self.max_tokens!r}",
                param="max_tokens",
            )
        _check_stop(self.stop)
        _check_number("ttft_ms", self.ttft_ms, 0.0, MAX_TTFT_MS)
        _check_number("tokens_per_s", self.tokens_per_s, 0.0, MAX_TOKENS_PER_S, open_low=True)
        _check_number("jitter", self.jitter, 0.0, MAX_JITTER)
        _check_number("fault_rate", self.fault_rate, 0.0, 1.0)
        if not isinstance(self.faults, FaultPlan):
            raise InvalidRequestError("faults must be a FaultPlan (see parse_faults)", param="faults")
        object.__setattr__(self, "fault_pool", parse_fault_pool(self.fault_pool))

    def canonical(self) -> dict[str, object]:
        """The request as plain JSON values, identical for requests that plan identical streams."""
        return {
            "model": self.model,
            "messages": [[m.role, m.content] for m in self.messages],
            "seed": self.seed,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop),
            "ttft_ms": _float(self.ttft_ms),
            "tokens_per_s": _float(self.tokens_per_s),
            "jitter": _float(self.jitter),
            "faults": self.faults.spec(),
            "fault_rate": float(self.fault_rate),
            "fault_pool": list(self.fault_pool),
        }


def stream_key(request: StreamRequest) -> str:
    """16 hex digits naming the stream: the same for the same request on every worker."""
    return stable_digest("stream-key", request.canonical(), size=8).hex()


def _float(value: float | None) -> float | None:
    # 100 and 100.0 are the same option: one JSON spelling for both.
    return None if value is None else float(value)


def _check_stop(stop: Sequence[object]) -> None:
    if len(stop) > MAX_STOP_SEQUENCES:
        raise InvalidRequestError(
            f"stop may hold at most {MAX_STOP_SEQUENCES} sequences, not {len(stop)}", param="stop"
        )
    for sequence in stop:
        if not isinstance(sequence, str) or not 1 <= len(sequence) <= MAX_STOP_LENGTH:
            raise InvalidRequestError(
                f"each stop sequence must be a non-empty string of at most {MAX_STOP_LENGTH} characters, "
                f"not {sequence!r}",
                param="stop",
            )


def _check_number(name: str, value: object, low: float, high: float, *, open_low: bool = False) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
        or (open_low and value == low)
    ):
        bound = f"greater than {low:g}" if open_low else f"at least {low:g}"
        raise InvalidRequestError(
            f"{name} must be a number {bound} and at most {high:g}, not {value!r}", param=name
        )
