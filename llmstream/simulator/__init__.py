"""The simulated model, pure: a request in, a `StreamPlan` (tokens, due times, usage, faults) out.

No I/O, no clock, no global random state: every random choice comes from a `random.Random` seeded
from a blake2b hash of the request, so a stream is the same on every machine and in every worker.

Typical use by the API layer::

    request = StreamRequest(model="typical", messages=(Message("user", "Hi!"),), seed=7,
                            faults=parse_faults(spec))           # InvalidRequestError on bad input
    plan = plan_resumed(request, headers.get("Last-Event-ID"))    # ResumeError if it does not fit
    if plan.http_error: ...                                       # answer with an HTTP error
    for due_ms, event in protocols.openai.stream_events(plan, created=..., request_id=...): ...
"""

from llmstream.simulator.errors import FaultSpecError, InvalidRequestError, ResumeError, UnknownModelError
from llmstream.simulator.faults import (
    DEFAULT_FAULT_POOL,
    NO_FAULTS,
    Api,
    EndingKind,
    FaultPlan,
    HttpFault,
    HttpFaultKind,
    Stall,
    draw_fault,
    parse_fault_pool,
    parse_faults,
)
from llmstream.simulator.plan import (
    Ending,
    FinishReason,
    StreamPlan,
    Token,
    TokenKind,
    Tokens,
    Usage,
    plan_stream,
)
from llmstream.simulator.profiles import MODELS, PROFILES, ModelProfile, get_profile
from llmstream.simulator.request import Message, StreamRequest, stream_key
from llmstream.simulator.resume import (
    event_id,
    event_id_prefix,
    parse_event_id,
    plan_resumed,
    resume_plan,
)
from llmstream.simulator.text import NATURAL_TOKENS
from llmstream.simulator.timing import rebase
from llmstream.simulator.tokenizer import count_message_tokens, count_tokens, tokenize

__all__ = [
    "DEFAULT_FAULT_POOL",
    "MODELS",
    "NATURAL_TOKENS",
    "NO_FAULTS",
    "PROFILES",
    "Api",
    "Ending",
    "EndingKind",
    "FaultPlan",
    "FaultSpecError",
    "FinishReason",
    "HttpFault",
    "HttpFaultKind",
    "InvalidRequestError",
    "Message",
    "ModelProfile",
    "ResumeError",
    "Stall",
    "StreamPlan",
    "StreamRequest",
    "Token",
    "TokenKind",
    "Tokens",
    "UnknownModelError",
    "Usage",
    "count_message_tokens",
    "count_tokens",
    "draw_fault",
    "event_id",
    "event_id_prefix",
    "get_profile",
    "parse_event_id",
    "parse_fault_pool",
    "parse_faults",
    "plan_resumed",
    "plan_stream",
    "rebase",
    "resume_plan",
    "stream_key",
    "tokenize",
]
