"""Rows the gateway tests send: the project's example data (examples/data), whose columns the
OpenAPI examples use."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
CREDIT_FRAUD_DATA = REPO / "examples" / "data" / "credit_fraud_sample.csv"


def credit_fraud_frame() -> pd.DataFrame:
    """The sample with its target column `Class`."""
    return pd.read_csv(CREDIT_FRAUD_DATA)


def credit_fraud_features() -> pd.DataFrame:
    """The sample's 30 feature columns (Time, V1..V28, Amount)."""
    return credit_fraud_frame().drop(columns="Class")
