"""Benchmark of the DataFrame <-> Frame codec: encode, serialize, parse, decode.

Run: python bench/bench_codec.py [--rows N] [--repeats R]

Prints best and median milliseconds and rows/s (at the median) per stage, for a 30-column float64
frame (built from a 2-D array, and built column by column) and a mixed-type frame, beside the
in-process floor (copying the numeric data once with numpy).
Exits 1 if encoding or decoding a float frame takes 1 second or more (median).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlplatform.client.frames import dataframe_to_frame, frame_to_dataframe
from mlplatform.v1 import frame_pb2

LIMIT_SECONDS = 1.0


@dataclass(frozen=True)
class Timing:
    frame: str
    stage: str
    rows: int
    seconds: list[float]

    @property
    def best_ms(self) -> float:
        return min(self.seconds) * 1000

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def rows_per_second(self) -> float:
        return self.rows / statistics.median(self.seconds)


def float_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """From one row-major 2-D array, as `pd.DataFrame(ndarray)` builds: each column is strided."""
    values = np.random.default_rng(seed).standard_normal((rows, 30))
    return pd.DataFrame(values, columns=[f"f{i:02d}" for i in range(30)])


def float_columns_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """Built column by column, as from files or decoded payloads: each column is contiguous."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({f"f{i:02d}": rng.standard_normal(rows) for i in range(30)})


def mixed_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """Three columns each of float (with NaN), nullable int with missing, string with None, bool."""
    rng = np.random.default_rng(seed)
    words = np.array(["red", "green", "blue", "grün", "青", "yellow", "magenta", "cyan"], object)
    columns: dict[str, object] = {}
    for i in range(3):
        floats = rng.standard_normal(rows)
        floats[rng.random(rows) < 0.05] = np.nan
        columns[f"float{i}"] = floats
        ints = rng.integers(-1_000_000, 1_000_000, rows)
        columns[f"int{i}"] = pd.arrays.IntegerArray(ints, rng.random(rows) < 0.05)
        strings = words[rng.integers(0, len(words), rows)]
        strings[rng.random(rows) < 0.05] = None
        columns[f"str{i}"] = strings
        columns[f"bool{i}"] = rng.random(rows) < 0.5
    return pd.DataFrame(columns)


def measure(repeats: int, action: Callable[[], object]) -> list[float]:
    action()  # warm-up: first calls pay for imports and allocator growth
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - start)
    return seconds


def bench_frame(label: str, df: pd.DataFrame, repeats: int) -> list[Timing]:
    frame = dataframe_to_frame(df)
    payload = frame.SerializeToString()
    parsed = frame_pb2.Frame.FromString(payload)
    pd.testing.assert_frame_equal(frame_to_dataframe(parsed), frame_to_dataframe(frame))
    numeric = df.select_dtypes("number")
    stages: dict[str, Callable[[], object]] = {
        "encode": lambda: dataframe_to_frame(df),
        "serialize": frame.SerializeToString,
        "parse": lambda: frame_pb2.Frame.FromString(payload),
        "decode": lambda: frame_to_dataframe(parsed),
        # The floor: copying the numeric data once, which any codec must at least do.
        "floor (numpy copy)": lambda: [np.array(numeric[c], copy=True) for c in numeric],
    }
    print(f"{label}: {len(df):,} rows x {df.shape[1]} columns, {len(payload) / 1e6:.1f} MB on wire")
    return [Timing(label, stage, len(df), measure(repeats, run)) for stage, run in stages.items()]


def print_table(timings: list[Timing]) -> None:
    header = f"{'frame':<10} {'stage':<20} {'best ms':>9} {'median ms':>10} {'rows/s (median)':>16}"
    print(header)
    print("-" * len(header))
    for timing in timings:
        print(
            f"{timing.frame:<10} {timing.stage:<20} {timing.best_ms:>9.2f} "
            f"{timing.median_ms:>10.2f} {timing.rows_per_second:>16,.0f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    timings = bench_frame("float", float_frame(args.rows), args.repeats)
    timings += bench_frame("float-col", float_columns_frame(args.rows), args.repeats)
    timings += bench_frame("mixed", mixed_frame(args.rows), args.repeats)
    print()
    print_table(timings)

    too_slow = [
        t
        for t in timings
        if t.frame.startswith("float")
        and t.stage in ("encode", "decode")
        and t.median_ms >= LIMIT_SECONDS * 1000
    ]
    for timing in too_slow:
        print(
            f"FAIL: {timing.frame} {timing.stage} median {timing.median_ms:.0f} ms "
            f">= {LIMIT_SECONDS * 1000:.0f} ms",
            file=sys.stderr,
        )
    return 1 if too_slow else 0


if __name__ == "__main__":
    sys.exit(main())
