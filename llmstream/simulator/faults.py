"""Fault injection, the pure part: fault specs, the plan they make, and seeded fault-rate draws.

Spec grammar (one fault, or several separated by commas; N and MS are non-negative integers)::

    rate_limit | server_error | unavailable | overloaded     answer with that HTTP error, no stream
    error_after:N       send N tokens, then the API's error event, and end
    truncate_after:N    send N tokens, then end cleanly with no final event
    reset_after:N       send N tokens, then abort the connection
    stall:N:MS          every token from the (N+1)-th on comes MS later (repeatable)
    slow_first_token:MS the first token (and so all) comes MS later

At most one HTTP fault, at most one of error_after/truncate_after/reset_after, at most one
slow_first_token. A mid-stream fault whose N exceeds the stream's token count does nothing; N equal
to it replaces the final event (error), drops it (truncate) or aborts instead (reset).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, NoReturn

from llmstream.simulator.errors import FaultSpecError

__all__ = [
    "DEFAULT_FAULT_POOL",
    "NO_FAULTS",
    "Api",
    "EndingKind",
    "FaultPlan",
    "HttpFault",
    "HttpFaultKind",
    "Stall",
    "draw_fault",
    "parse_fault_pool",
    "parse_faults",
]

Api = Literal["native", "openai", "anthropic"]
HttpFaultKind = Literal["rate_limit", "server_error", "unavailable", "overloaded"]
EndingKind = Literal["error", "truncate", "reset"]

ACCEPTED_FORMS = (
    "rate_limit, server_error, unavailable, overloaded, error_after:N, truncate_after:N, "
    "reset_after:N, stall:N:MS, slow_first_token:MS (N, MS: non-negative integers; several faults "
    "separated by commas)"
)
MAX_AFTER = 1_000_000
MAX_MS = 600_000
RATE_LIMIT_RETRY_AFTER_S = 1
_HTTP_KINDS: dict[str, HttpFaultKind] = {
    k: k for k in ("rate_limit", "server_error", "unavailable", "overloaded")
}
_ENDINGS: dict[str, EndingKind] = {f"{k}_after": k for k in ("error", "truncate", "reset")}
_NUMBER = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True, slots=True)
class HttpFault:
    """Answer the request with an HTTP error instead of a stream."""

    kind: HttpFaultKind

    def status(self, api: Api) -> int:
        """The HTTP status on ``api``: overloaded is Anthropic's own 529, a 503 elsewhere."""
        if self.kind == "overloaded":
            return 529 if api == "anthropic" else 503
        return {"rate_limit": 429, "server_error": 500, "unavailable": 503}[self.kind]

    @property
    def retry_after_s(self) -> int | None:
        return RATE_LIMIT_RETRY_AFTER_S if self.kind == "rate_limit" else None

    def headers(self) -> tuple[tuple[str, str], ...]:
        """Response headers: the OpenAI and Anthropic SDKs read retry-after-ms, then retry-after."""
        if self.retry_after_s is None:
            return ()
        return (("retry-after", str(self.retry_after_s)), ("retry-after-ms", str(self.retry_after_s * 1000)))


@dataclass(frozen=True, slots=True)
class Stall:
    """Tokens from index ``after_tokens`` on are delayed by ``ms`` (after N tokens, a pause of MS)."""

    after_tokens: int
    ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultPlan:
    """The faults of one request. The empty plan, ``NO_FAULTS``, is falsy."""

    http_error: HttpFault | None = None
    error_after: int | None = None
    truncate_after: int | None = None
    reset_after: int | None = None
    stalls: tuple[Stall, ...] = field(default=())
    slow_first_token_ms: int = 0

    @property
    def ending(self) -> tuple[EndingKind, int] | None:
        """The mid-stream fault, as (kind, after N tokens), if any."""
        for name, kind in _ENDINGS.items():
            after: int | None = getattr(self, name)
            if after is not None:
                return kind, after
        return None

    def __bool__(self) -> bool:
        return self != NO_FAULTS

    def spec(self) -> str:
        """The canonical spec: ``parse_faults(plan.spec()) == plan``."""
        parts: list[str] = [self.http_error.kind] if self.http_error else []
        if self.ending:
            parts.append(f"{self.ending[0]}_after:{self.ending[1]}")
        parts += [f"stall:{s.after_tokens}:{s.ms}" for s in self.stalls]
        if self.slow_first_token_ms:
            parts.append(f"slow_first_token:{self.slow_first_token_ms}")
        return ",".join(parts)

    def merged(self, other: FaultPlan) -> FaultPlan:
        """This plan plus ``other`` (a drawn fault) where this one leaves room: explicit faults win."""
        return FaultPlan(
            http_error=self.http_error or other.http_error,
            **dict(_ending_fields(self.ending or other.ending)),
            stalls=self.stalls + other.stalls,
            slow_first_token_ms=self.slow_first_token_ms or other.slow_first_token_ms,
        )


NO_FAULTS = FaultPlan()

# The fault_rate pool used when a request names none: the three failures load tests care about most.
# A bare mid-stream kind (no :N) means "after a number of tokens drawn from the seeded generator".
DEFAULT_FAULT_POOL: tuple[str, ...] = ("rate_limit", "server_error", "error_after")


def parse_faults(spec: str | None) -> FaultPlan:
    """Parse a fault spec; `FaultSpecError` names the bad part and lists the accepted forms."""
    if spec is None or not spec.strip():
        return NO_FAULTS
    http: HttpFault | None = None
    ending: tuple[EndingKind, int] | None = None
    stalls: list[Stall] = []
    slow: int | None = None
    for raw in spec.split(","):
        part = raw.strip()
        name, _, args = part.partition(":")
        if name in _HTTP_KINDS and not args:
            if http is not None:
                _fail(part, spec, "only one HTTP error fault is allowed per request")
            http = HttpFault(_HTTP_KINDS[name])
        elif name in _ENDINGS:
            if ending is not None:
                _fail(part, spec, "only one of error_after, truncate_after, reset_after is allowed")
            ending = (_ENDINGS[name], _number(part, spec, args, MAX_AFTER, "N"))
        elif name == "stall":
            after, _, ms = args.partition(":")
            stalls.append(
                Stall(_number(part, spec, after, MAX_AFTER, "N"), _number(part, spec, ms, MAX_MS, "MS"))
            )
        elif name == "slow_first_token":
            if slow is not None:
                _fail(part, spec, "slow_first_token may be given only once")
            slow = _number(part, spec, args, MAX_MS, "MS")
        else:
            _fail(part, spec, "unknown fault" if part else "empty fault")
    return FaultPlan(
        http_error=http,
        **dict(_ending_fields(ending)),
        stalls=tuple(stalls),
        slow_first_token_ms=slow or 0,
    )


def parse_fault_pool(spec: str | Iterable[str] | None) -> tuple[str, ...]:
    """A fault_rate pool: single faults, comma-separated; bare error_after/truncate_after/reset_after
    mean "after a drawn number of tokens". None or empty gives ``DEFAULT_FAULT_POOL``."""
    if spec is None or spec == DEFAULT_FAULT_POOL:
        return DEFAULT_FAULT_POOL  # nearly every request's: checked once, not twice per request
    entries = [e.strip() for e in (spec.split(",") if isinstance(spec, str) else spec or ())]
    if not any(entries):
        return DEFAULT_FAULT_POOL
    for entry in entries:
        if entry not in _ENDINGS:
            parse_faults(entry)  # raises for a bad entry, naming it
    return tuple(entries)


def draw_fault(rate: float, pool: tuple[str, ...], tokens: int, rng: random.Random) -> FaultPlan:
    """Whether this request fails (probability ``rate``) and how, drawn from ``rng``.

    Always draws the same three numbers, so the same seed picks the same fault at any rate that
    lets one through. A bare mid-stream kind fails after a drawn 0..tokens tokens.
    """
    hit, pick, where = rng.random(), rng.randrange(len(pool)), rng.random()
    if hit >= rate:
        return NO_FAULTS
    entry = pool[pick]
    if entry in _ENDINGS:
        entry = f"{entry}:{min(int(where * (tokens + 1)), tokens)}"
    return parse_faults(entry)


def _ending_fields(ending: tuple[EndingKind, int] | None) -> dict[str, int]:
    return {f"{ending[0]}_after": ending[1]} if ending else {}


def _number(part: str, spec: str, text: str, limit: int, name: str) -> int:
    if not _NUMBER.fullmatch(text) or int(text) > limit:
        _fail(part, spec, f"{name} must be an integer from 0 to {limit}, not {text!r}")
    return int(text)


def _fail(part: str, spec: str, why: str) -> NoReturn:
    raise FaultSpecError(f"bad fault {part!r} in {spec!r}: {why}; accepted forms: {ACCEPTED_FORMS}")
