"""llmstream: a simulated LLM that streams fake model tokens as JSON Server-Sent Events.

The public API is what `__all__` names; everything else is internal and may change.
"""

from llmstream.sse import ServerSentEvent, SSEDecoder, SSEFieldError

__version__ = "0.1.0"

__all__ = [
    "SSEDecoder",
    "SSEFieldError",
    "ServerSentEvent",
    "__version__",
]
