"""Test-only model behaviour, pickled by value into registered models (cloudpickle).

`fail_or_sleep` sits in front of the estimator: `x == MARKER_FAIL` makes the model raise (a model
failing at predict time), a negative `x` makes it sleep that many seconds (a slow model call
that releases the GIL: requests queue behind it, or are in flight at SIGTERM), and an `x` from
SPIN_BASE to SPIN_BASE + 1000 makes it compute in Python for `x - SPIN_BASE` milliseconds,
holding the GIL as most real models do.
"""

from __future__ import annotations

import time

import pandas as pd

MARKER_FAIL = 666.0
SPIN_BASE = 10_000.0


def fail_or_sleep(features: pd.DataFrame) -> pd.DataFrame:
    """Identity, except for the marker values above."""
    values = features["x"]
    if (values == MARKER_FAIL).any():
        raise ValueError("the test model refuses the marker value")
    slowest = -float(values.min())
    if slowest > 0:
        time.sleep(slowest)
    spinning = values[(values >= SPIN_BASE) & (values < SPIN_BASE + 1000)]
    if len(spinning):
        until = time.perf_counter() + (float(spinning.max()) - SPIN_BASE) / 1000
        while time.perf_counter() < until:
            pass
    return features
