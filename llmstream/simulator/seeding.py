"""Stable randomness: a `random.Random` per purpose, seeded from a hash of canonical input.

Never Python's `hash()`: it is salted per process (PYTHONHASHSEED), so two workers would disagree.
blake2b over a canonical JSON encoding is the same on every machine and in every process, and
`random.Random(int)` is specified to give the same sequence for the same seed on every platform.
"""

from __future__ import annotations

import hashlib
import json
import random

__all__ = ["canonical_bytes", "seeded_random", "stable_digest"]

# Part of every hash: bump it when the simulator's output for the same input changes, so that an old
# Last-Event-ID is refused instead of resuming into a different text.
SIMULATOR_VERSION = "llmstream-sim-1"


def canonical_bytes(value: object) -> bytes:
    """One byte string per value: sorted keys, no whitespace, UTF-8, no NaN/Infinity."""
    return json.dumps(
        value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode()


def stable_digest(*parts: object, size: int = 32) -> bytes:
    """blake2b of the versioned canonical encoding of ``parts``."""
    return hashlib.blake2b(canonical_bytes([SIMULATOR_VERSION, *parts]), digest_size=size).digest()


def seeded_random(purpose: str, *parts: object) -> random.Random:
    """A private generator for one purpose (text, timing, faults ...), seeded from ``parts``.

    Separate purposes keep the streams independent: changing the timing options does not change
    the text, and drawing one more number for the text does not shift the timing.
    """
    return random.Random(int.from_bytes(stable_digest(purpose, *parts), "big"))
