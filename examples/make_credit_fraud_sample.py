"""Writes examples/data/credit_fraud_sample.csv, a small credit-fraud-like data set, and
examples/data/rows.csv and rows.json, a few of its rows without the target (what `mlp predict`
and `POST /predict` send).

The Kaggle set (mlg-ulb/creditcardfraud) needs the internet; this one is made here,
deterministically, with the same shape: `Time`, `V1`..`V28` (PCA-like components),
`Amount` and an imbalanced binary target `Class` (about 3% frauds). Frauds differ
from genuine transactions on a few components, so models have something to learn.

    python examples/make_credit_fraud_sample.py [--rows 5000] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_OUT = Path(__file__).parent / "data" / "credit_fraud_sample.csv"
ROWS_OUT = Path(__file__).parent / "data" / "rows.csv"
ROWS_JSON_OUT = Path(__file__).parent / "data" / "rows.json"
FRAUD_RATE = 0.03
SEED = 20211201
# Components on which frauds are shifted, and by how much (in standard deviations).
FRAUD_SHIFTS = {"V3": -2.0, "V4": 1.8, "V10": -2.2, "V12": -2.4, "V14": -2.6, "V17": -1.9}


def make_sample(rows: int = 5000, seed: int = SEED) -> pd.DataFrame:
    """The sample as a DataFrame; the same `rows` and `seed` give the same frame."""
    rng = np.random.default_rng(seed)
    is_fraud = np.zeros(rows, dtype=np.int64)
    is_fraud[rng.choice(rows, size=round(rows * FRAUD_RATE), replace=False)] = 1
    columns: dict[str, np.ndarray] = {"Time": np.sort(rng.uniform(0, 172_792, rows)).round(0)}
    for index in range(1, 29):
        name = f"V{index}"
        values = rng.normal(0.0, 1.0, rows)
        values += FRAUD_SHIFTS.get(name, 0.0) * is_fraud
        columns[name] = values.round(6)
    amounts = rng.lognormal(mean=3.0, sigma=1.2, size=rows)
    amounts[is_fraud == 1] = rng.lognormal(mean=4.2, sigma=1.4, size=int(is_fraud.sum()))
    columns["Amount"] = amounts.round(2)
    columns["Class"] = is_fraud
    return pd.DataFrame(columns)


def feature_rows(sample: pd.DataFrame) -> pd.DataFrame:
    """Two genuine transactions and one fraud, without `Class`: rows to predict."""
    chosen = pd.concat([sample[sample["Class"] == 0].head(2), sample[sample["Class"] == 1].head(1)])
    return chosen.drop(columns=["Class"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    frame = make_sample(args.rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(f"wrote {len(frame)} rows ({int(frame['Class'].sum())} frauds) to {args.out}")
    if args.out == DEFAULT_OUT:
        rows = feature_rows(frame)
        rows.to_csv(ROWS_OUT, index=False)
        body = {"records": rows.to_dict(orient="records"), "include_probabilities": True}
        ROWS_JSON_OUT.write_text(json.dumps(body) + "\n")
        print(f"wrote 3 rows to predict, without Class, to {ROWS_OUT} and {ROWS_JSON_OUT}")


if __name__ == "__main__":
    main()
