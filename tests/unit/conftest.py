"""Hypothesis profiles for the unit suite.

``ci`` runs at least 1,000 examples per property with no deadline (shared CI runners are noisy);
``dev`` is quick for the edit-test loop. Pick one with HYPOTHESIS_PROFILE; by default ``ci`` when
CI=true, else ``dev``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=1000,
    deadline=None,
    print_blob=True,
    # Timing health checks fail on slow shared runners without saying anything about the code.
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") == "true" else "dev"))
