"""Reading and checking request values, shared by the three APIs.

Every refusal is an `InvalidRequestError` (the simulator's own, a ValueError) whose ``param`` names the
field at fault, so each blueprint renders it in its API's error shape (errors.py in this package maps
`UnknownModelError` to 404 and everything else to 400). The checks are pure functions of plain JSON
values, so tests drive them with plain dicts; only `json_body` touches the request.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from quart import request
from werkzeug.exceptions import RequestTimeout

from llmstream.simulator import (
    DEFAULT_FAULT_POOL,
    NO_FAULTS,
    FaultPlan,
    InvalidRequestError,
    get_profile,
    parse_fault_pool,
    parse_faults,
)

__all__ = [
    "FAULT_HEADER",
    "FAULT_POOL_HEADER",
    "FAULT_RATE_HEADER",
    "FaultOptions",
    "HeaderLookup",
    "Timing",
    "fault_options",
    "json_body",
    "json_type",
    "max_tokens",
    "optional_bool",
    "optional_int",
    "optional_number",
    "optional_object",
    "optional_string",
    "parse_bool",
    "parse_number",
    "string_list",
    "timing",
]

# For clients that cannot add a body field (a browser's EventSource, a proxy under test, an SDK).
FAULT_HEADER = "X-LLMStream-Fault"
FAULT_RATE_HEADER = "X-LLMStream-Fault-Rate"
FAULT_POOL_HEADER = "X-LLMStream-Fault-Pool"


async def whole_body() -> bytes:
    """The request's body, as Quart's `get_data(cache=False)` reads it, with no loop iteration's wait
    for a body that is already there. Quart wraps the read in `asyncio.wait_for`, which on Python 3.11
    runs it in a task of its own: every request waited two loop iterations for its body, each as long
    as the loop's busiest, and under load requests queued behind each other (measured: 0.2 s per
    request at 400 new streams a second). `asyncio.timeout` keeps the time limit without a task."""
    try:
        async with asyncio.timeout(request.body_timeout):
            raw: bytes = await request.body
    except TimeoutError as exc:
        raise RequestTimeout() from exc
    request.body.clear()
    return raw


class HeaderLookup(Protocol):
    """Request headers (werkzeug's Headers, or a plain dict in tests): case-insensitive in the app."""

    def get(self, key: str, /) -> str | None: ...


async def json_body() -> dict[str, Any]:
    """The request body as a JSON object. A body above MAX_CONTENT_LENGTH raises werkzeug's 413, one
    slower than the request's body timeout werkzeug's 408."""
    raw = await whole_body()
    if not raw.strip():
        raise InvalidRequestError("the request body is empty: send a JSON object")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # Where, not orjson's wording: the message stays the same across orjson versions.
        where = f"line {exc.lineno}, column {exc.colno}"
        raise InvalidRequestError(f"the request body is not valid JSON (at {where})") from None
    if not isinstance(value, dict):
        raise InvalidRequestError(f"the request body must be a JSON object, not {json_type(value)}")
    return value


def json_type(value: object) -> str:
    """The JSON name of a value's type, for messages ("an integer", not "int")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _wrong(param: str, wanted: str, value: object) -> InvalidRequestError:
    shown = repr(value) if isinstance(value, str | int | float) and len(repr(value)) <= 40 else ""
    return InvalidRequestError(
        f"{param} must be {wanted}, not {json_type(value)}{f' ({shown})' if shown else ''}", param=param
    )


def optional_string(body: Mapping[str, Any], name: str, *, param: str | None = None) -> str | None:
    value = body.get(name)
    if value is None or isinstance(value, str):
        return value
    raise _wrong(param or name, "a string", value)


def optional_bool(body: Mapping[str, Any], name: str, *, param: str | None = None) -> bool | None:
    value = body.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise _wrong(param or name, "a boolean", value)


def optional_int(body: Mapping[str, Any], name: str, *, param: str | None = None) -> int | None:
    value = body.get(name)
    # JSON has one number type: 5.0 is accepted as 5, as the providers' validators do.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise _wrong(param or name, "an integer", value)


def optional_number(body: Mapping[str, Any], name: str, *, param: str | None = None) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise _wrong(param or name, "a number", value)


def optional_object(body: Mapping[str, Any], name: str, *, param: str | None = None) -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise _wrong(param or name, "an object", value)


def string_list(value: object, param: str, *, limit: int, single: bool = True) -> tuple[str, ...]:
    """A string or an array of strings (at most ``limit``); null is the empty tuple."""
    if value is None:
        return ()
    if isinstance(value, str) and single:
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _wrong(param, "a string or an array of strings" if single else "an array of strings", value)
    if len(value) > limit:
        raise InvalidRequestError(
            f"{param} may hold at most {limit} sequences, not {len(value)}", param=param
        )
    return tuple(value)


def text_of_parts(content: object, where: str, *, parts: str) -> str:
    """A string, or an array of `parts` (e.g. "content parts") whose text parts count, joined by LF.

    Other part types (images, audio, tool results ...) are accepted: the simulator reads only text.
    """
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequestError(
            f"{where} must be a string or an array of {parts}, not {json_type(content)}", param=where
        )
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise InvalidRequestError(f"{where}[{j}] must be an object with a type", param=f"{where}[{j}]")
        if part["type"] == "text":
            if not isinstance(part.get("text"), str):
                raise InvalidRequestError(f"{where}[{j}].text must be a string", param=f"{where}[{j}].text")
            texts.append(part["text"])
    return "\n".join(texts)


def max_tokens(value: int | None, model: str, param: str) -> int | None:
    """``value`` checked against the model's output limit, naming the field the caller used."""
    if value is None:
        return None
    limit = get_profile(model).max_output_tokens  # UnknownModelError first: a 404 says more than a 400
    if not 1 <= value <= limit:
        raise InvalidRequestError(
            f"{param} must be from 1 to {limit} for model {model!r}, not {value}", param=param
        )
    return value


def parse_bool(raw: str, param: str) -> bool:
    """A query-string boolean: 1/0, true/false, yes/no, on/off."""
    word = raw.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("", "0", "false", "no", "off"):
        return False
    raise InvalidRequestError(f"{param} must be true or false (or 1 or 0), not {raw[:40]!r}", param=param)


def parse_number(raw: str, param: str, *, integer: bool = False) -> float:
    """A query-string number (or integer)."""
    try:
        value = float(int(raw)) if integer else float(raw)
    except ValueError:
        wanted = "an integer" if integer else "a number"
        raise InvalidRequestError(f"{param} must be {wanted}, not {raw[:40]!r}", param=param) from None
    if not math.isfinite(value):
        raise InvalidRequestError(f"{param} must be a finite number, not {raw[:40]!r}", param=param)
    return value


@dataclass(frozen=True, slots=True)
class Timing:
    """Per-request overrides of the model's timing (None: the model's own)."""

    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    jitter: float | None = None

    def fields(self) -> dict[str, float | None]:
        """As `StreamRequest`'s keyword arguments (`dataclasses.asdict` copies deeply: slower)."""
        return {"ttft_ms": self.ttft_ms, "tokens_per_s": self.tokens_per_s, "jitter": self.jitter}


def timing(options: Mapping[str, Any], *, prefix: str = "") -> Timing:
    # Ranges are checked by StreamRequest; here only the JSON types.
    names = ("ttft_ms", "tokens_per_s", "jitter")
    return Timing(*(optional_number(options, name, param=prefix + name) for name in names))


@dataclass(frozen=True, slots=True)
class FaultOptions:
    faults: FaultPlan = NO_FAULTS
    fault_rate: float = 0.0
    fault_pool: tuple[str, ...] = DEFAULT_FAULT_POOL


def fault_options(options: Mapping[str, Any], headers: HeaderLookup, *, prefix: str = "") -> FaultOptions:
    """Faults from the request's own fields, else from the X-LLMStream-Fault* headers.

    A field wins over its header: the header is for clients that cannot change the body.
    """
    spec = optional_string(options, "faults", param=prefix + "faults")
    if spec is None:
        spec = headers.get(FAULT_HEADER)
    rate = optional_number(options, "fault_rate", param=prefix + "fault_rate")
    if rate is None and (raw_rate := headers.get(FAULT_RATE_HEADER)) is not None:
        rate = parse_number(raw_rate, FAULT_RATE_HEADER)
    pool = optional_string(options, "fault_pool", param=prefix + "fault_pool")
    if pool is None:
        pool = headers.get(FAULT_POOL_HEADER)
    try:
        faults = parse_faults(spec)
    except InvalidRequestError as exc:
        raise InvalidRequestError(exc.message, param=prefix + "faults") from None
    try:
        fault_pool = parse_fault_pool(pool)
    except InvalidRequestError as exc:
        raise InvalidRequestError(exc.message, param=prefix + "fault_pool") from None
    if rate is not None and not 0 <= rate <= 1:
        param = prefix + "fault_rate"
        raise InvalidRequestError(f"fault_rate must be from 0 to 1, not {rate:g}", param=param)
    return FaultOptions(faults, rate or 0.0, fault_pool)
