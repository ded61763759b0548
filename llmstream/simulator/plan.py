"""Request to StreamPlan: the whole stream, decided before the first byte is sent.

A plan is a pure function of its `StreamRequest`: the same request gives the same tokens, due times
and usage on every machine and in every worker process, which is what lets any worker resume any
stream from a ``Last-Event-ID`` (resume.py). Steps:

1. the answer text (composed, or the last user message for ``echo``) and, for a reasoning model, the
   thinking text; both tokenised; thinking tokens come first and share one index sequence;
2. the cuts a model makes: a stop sequence (``finish_reason="stop"``, text up to the sequence,
   the token where it begins cut short) or max_tokens (``"length"``), whichever comes first;
3. the faults: the request's own, plus one drawn with probability ``fault_rate``;
4. the schedule for the natural length (timing.py), with the fault delays (stall, slow_first_token);
5. the mid-stream fault, if any: the tokens to send end after N and ``ending`` says what follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmstream.simulator.errors import InvalidRequestError
from llmstream.simulator.faults import FaultPlan, HttpFault, draw_fault
from llmstream.simulator.profiles import ModelProfile, get_profile
from llmstream.simulator.request import StreamRequest, stream_key
from llmstream.simulator.seeding import seeded_random
from llmstream.simulator.text import compose_answer, compose_thinking
from llmstream.simulator.timing import latency_model, schedule
from llmstream.simulator.tokenizer import count_message_tokens, tokenize
from llmstream.simulator.tokens import Token, TokenKind, Tokens

__all__ = ["Ending", "FinishReason", "StreamPlan", "Token", "TokenKind", "Tokens", "Usage", "plan_stream"]

FinishReason = Literal["stop", "length"]
# What the stream does after its last token: "finish" sends the finish events; "error" the API's
# error event; "truncate" ends the response cleanly with nothing more; "reset" aborts the connection.
Ending = Literal["finish", "error", "truncate", "reset"]


@dataclass(frozen=True, slots=True)
class Usage:
    """What the finish event reports, about the whole completion (also in a resumed stream)."""

    prompt_tokens: int
    completion_tokens: int  # thinking tokens included, as OpenAI and Anthropic count them
    reasoning_tokens: int
    ttft_ms: float
    tokens_per_s: float | None  # over the completion's planned schedule; None if undefined (instant)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamPlan:
    """The stream to send. Times are ms from the start of the response."""

    request: StreamRequest
    profile: ModelProfile
    stream_key: str  # 16 hex digits; token event ids are f"{stream_key}:{index}"
    completion: Tokens  # the whole completion after stop/max_tokens cuts (for complete bodies)
    tokens: Tokens  # the tokens to stream: completion cut by a mid-stream fault, or resumed
    finish_reason: FinishReason
    stop_sequence: str | None  # the stop sequence that ended the completion, if one did
    usage: Usage
    faults: FaultPlan  # in force: the request's own plus any drawn by fault_rate
    ending: Ending
    # When the stream ends: the finish or error event is due then, and a truncate or reset fault
    # strikes then (when the next token would have come); never before the last token's due time.
    end_ms: float
    resumed_after: int | None = None  # the index this stream resumes after, None for a fresh one

    @property
    def model(self) -> str:
        return self.request.model

    @property
    def http_error(self) -> HttpFault | None:
        """An HTTP error to answer with instead of any stream (a rate_limit ... fault)."""
        return self.faults.http_error

    @property
    def text(self) -> str:
        """The completion's answer text (what a non-streaming response returns)."""
        completion = self.completion
        return "".join(t for t, k in zip(completion.texts, completion.kinds, strict=True) if k == "text")

    @property
    def thinking(self) -> str:
        completion = self.completion
        return "".join(t for t, k in zip(completion.texts, completion.kinds, strict=True) if k == "thinking")

    @property
    def complete_ms(self) -> float:
        """When the whole completion is ready: how long a non-streaming response takes."""
        return self.completion[-1].due_ms if self.completion else self.usage.ttft_ms


def plan_stream(request: StreamRequest) -> StreamPlan:
    """Plan the stream ``request`` asks for. Raises `InvalidRequestError` for a prompt too long."""
    profile = get_profile(request.model)
    messages = [[m.role, m.content] for m in request.messages]
    prompt_tokens = count_message_tokens(request.messages)
    if prompt_tokens > profile.max_context_tokens:
        raise InvalidRequestError(
            f"the prompt is {prompt_tokens} tokens; model {profile.name!r} accepts at most "
            f"{profile.max_context_tokens}",
            param="messages",
        )
    prompt = _last_user_message(request)
    # The text depends on the conversation and seed only: every profile answers alike (instant too).
    answer = prompt if profile.echo else compose_answer(prompt, seeded_random("text", messages, request.seed))
    thinking = (
        compose_thinking(prompt, seeded_random("thinking", messages, request.seed))
        if profile.reasoning
        else ""
    )
    thinking_tokens, answer_tokens = tokenize(thinking), tokenize(answer)
    natural = len(thinking_tokens) + len(answer_tokens)

    kept_answer, stop_sequence, stop_end = _cut_at_stop(answer_tokens, request.stop)
    limit = request.max_tokens if request.max_tokens is not None else natural
    finish_reason: FinishReason
    if stop_sequence is not None and len(thinking_tokens) + stop_end < limit:
        texts, finish_reason = thinking_tokens + kept_answer, "stop"  # stopped within max_tokens
    elif natural > limit:
        texts, stop_sequence, finish_reason = (thinking_tokens + answer_tokens)[:limit], None, "length"
    else:
        texts, stop_sequence, finish_reason = thinking_tokens + answer_tokens, None, "stop"

    key = stream_key(request)
    faults = request.faults
    if request.fault_rate > 0:  # drawn for the completion as cut, so a drawn error_after always strikes
        drawn = draw_fault(request.fault_rate, request.fault_pool, len(texts), seeded_random("faults", key))
        faults = faults.merged(drawn)

    # Timed for the natural length, so that max_tokens and stop cut a schedule without reshuffling it.
    model = latency_model(
        profile, ttft_ms=request.ttft_ms, tokens_per_s=request.tokens_per_s, jitter=request.jitter
    )
    timing = schedule(natural, prompt_tokens, model, seeded_random("timing", messages, request.seed))
    delays = [(0, faults.slow_first_token_ms)] + [(s.after_tokens, s.ms) for s in faults.stalls]
    due = timing.delayed(delays).due_ms
    thinking_kind: list[TokenKind] = ["thinking"]
    text_kind: list[TokenKind] = ["text"]
    kinds = thinking_kind * len(thinking_tokens) + text_kind * len(answer_tokens)
    completion = Tokens(texts, due[: len(texts)], kinds[: len(texts)])
    ttft_ms = due[0]  # due_ms always holds the first token's time, even for an empty completion
    end_ms = completion[-1].due_ms if completion else ttft_ms
    tokens = completion
    ending: Ending = "finish"
    if faults.ending is not None and faults.ending[1] <= len(completion):
        kind, after = faults.ending
        tokens, ending = completion[:after], kind
        end_ms = completion[after].due_ms if after < len(completion) else end_ms
    return StreamPlan(
        request=request,
        profile=profile,
        stream_key=key,
        completion=completion,
        tokens=tokens,
        finish_reason=finish_reason,
        stop_sequence=stop_sequence,
        usage=Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=len(completion),
            reasoning_tokens=completion.kinds.count("thinking"),
            ttft_ms=ttft_ms,
            tokens_per_s=_rate(completion),
        ),
        faults=faults,
        ending=ending,
        end_ms=end_ms,
    )


def _last_user_message(request: StreamRequest) -> str:
    for message in reversed(request.messages):
        if message.role == "user":
            return message.content
    return request.messages[-1].content


def _cut_at_stop(tokens: list[str], stop: tuple[str, ...]) -> tuple[list[str], str | None, int]:
    """Tokens up to the first stop sequence (excluded; the token where it begins is cut short),
    the sequence, and the index of the token in which it ends (when the model would notice it)."""
    text = "".join(tokens)
    found = [(start, len(s), s) for s in stop if (start := text.find(s)) >= 0]
    if not found:
        return tokens, None, len(tokens)
    start, length, sequence = min(found)  # the earliest; of two there, the shorter completes first
    kept: list[str] = []
    position = 0
    end_index = None
    for index, token in enumerate(tokens):
        if position < start:
            kept.append(token[: start - position])
        position += len(token)
        if position >= start + length:
            end_index = index
            break
    assert end_index is not None  # the sequence lies within the text
    return kept, sequence, end_index


def _rate(completion: Tokens) -> float | None:
    if len(completion) < 2 or completion[-1].due_ms <= completion[0].due_ms:
        return None
    return round((len(completion) - 1) * 1000 / (completion[-1].due_ms - completion[0].due_ms), 1)
