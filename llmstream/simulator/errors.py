"""What the simulator refuses, as one small tree (every class is a ValueError: bad input, not a bug)::

ValueError
 └── InvalidRequestError     a request value the caller can fix; `param` names it (OpenAI's "param")
      ├── UnknownModelError  no such model profile (APIs answer 404)
      ├── FaultSpecError     a fault spec that does not parse
      └── ResumeError        a Last-Event-ID that cannot resume this request
"""

from __future__ import annotations

__all__ = ["FaultSpecError", "InvalidRequestError", "ResumeError", "UnknownModelError"]


class InvalidRequestError(ValueError):
    """A request value out of range; ``param`` names the request field at fault (or None)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class UnknownModelError(InvalidRequestError):
    """The requested model is not one of ``MODELS``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="model")


class FaultSpecError(InvalidRequestError):
    """A fault spec (``rate_limit``, ``stall:N:MS``, ...) that does not parse."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="faults")


class ResumeError(InvalidRequestError):
    """A ``Last-Event-ID`` that is malformed or belongs to another request."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="Last-Event-ID")
