"""Test-only model behaviour, pickled by value into registered models (cloudpickle).

`fail_or_sleep` sits in front of the estimator: `x == MARKER_FAIL` makes the model raise (a model
failing at predict time) and a negative `x` makes it sleep that many seconds (a slow model call:
requests queue behind it, or are in flight at SIGTERM).
"""

from __future__ import annotations

import time

import pandas as pd

MARKER_FAIL = 666.0


def fail_or_sleep(features: pd.DataFrame) -> pd.DataFrame:
    """Identity, except for the marker values above."""
    values = features["x"]
    if (values == MARKER_FAIL).any():
        raise ValueError("the test model refuses the marker value")
    slowest = -float(values.min())
    if slowest > 0:
        time.sleep(slowest)
    return features
