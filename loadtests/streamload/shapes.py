"""Load over time, as a fraction of the full load: pure functions of the elapsed and total time.

The same fraction scales the user count of a closed loop and the arrival rate of an open loop.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["SHAPES", "Shape", "load_fraction"]

Shape = Literal["steady", "ramp", "spike"]
SHAPES: tuple[Shape, ...] = ("steady", "ramp", "spike")
SPIKE_BASE = 0.25  # a spike's load before and after it, as a fraction of the peak
SPIKE_FROM, SPIKE_TO = 0.4, 0.6  # the spike's part of the run
RAMP_FLOOR = 0.02  # a ramp starts with a little load, never none (an open loop needs some rate)


def load_fraction(shape: Shape, elapsed: float, duration: float | None) -> float:
    """The share of the full load at ``elapsed`` seconds into a run of ``duration`` seconds.

    steady: all of it from the start. ramp: rising in a straight line to all of it at the end.
    spike: a quarter, then all of it for the middle fifth of the run, then a quarter again.
    A run with no duration (until stopped by hand) is steady.
    """
    if shape == "steady" or not duration:
        return 1.0
    progress = min(max(elapsed / duration, 0.0), 1.0)
    if shape == "ramp":
        return max(progress, RAMP_FLOOR)
    return 1.0 if SPIKE_FROM <= progress < SPIKE_TO else SPIKE_BASE
