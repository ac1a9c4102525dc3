"""Benchmark of the prediction store: batched appends, then the common queries.

    python bench/bench_store.py [--uri URI] [--rows 100000] [--batch-size 1000] [--keys]

Without --uri it writes a fresh SQLite file in a temporary folder (removed afterwards). Rows
have 30 numeric features, like a typical tabular model input; half the batches are batch-inferer
rows, half online requests of 10 rows, across three model versions, each written the way its
service writes it: online records as the predictor's log appends them, batch rows as the
inferer does, a columnar chunk (`BatchPredictions`) at a time. They are built before the clock
starts (services hand the store ready records) and the time to encode them without a database
is printed beside the append as the in-process floor. With --keys every row also carries a
prediction key (as when the caller sends a key column), and recording outcomes by key is timed
beside recording them by (request or batch id, row). Exits 1 when the append takes 5 s or more,
the target for SQLite on a developer machine.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.common.store import (
    BatchPredictions,
    Outcome,
    PredictionRecord,
    PredictionSource,
    Store,
    open_store,
)
from mlplatform.common.store.sqlite_batch_rows import encode_batch
from mlplatform.common.store.sqlite_rows import prediction_row

APPEND_TARGET_SECONDS = 5.0
FEATURE_COUNT = 30
ROWS_PER_REQUEST = 10
QUERY_REPEATS = 20
VERSION_COUNT = 3
OUTCOMES_PER_CALL = 100


Write = list[PredictionRecord] | BatchPredictions


def as_chunk(records: list[PredictionRecord]) -> BatchPredictions:
    """A batch's records as the inferer hands them over: columns, one time, one latency."""
    probabilities = [record.probabilities or {} for record in records]
    return BatchPredictions(
        model_name=records[0].model_name,
        model_version=records[0].model_version,
        batch_id=records[0].batch_id or "",
        row_offset=records[0].row_index,
        inputs=pd.DataFrame([record.input_row for record in records]),
        predictions=np.array([record.prediction for record in records]),
        probabilities=np.array([[row["0"], row["1"]] for row in probabilities]),
        class_names=("0", "1"),
        latency_ms=records[0].latency_ms,
        created_at=records[0].created_at,
        prediction_keys=None
        if records[0].prediction_key is None
        else tuple(record.prediction_key for record in records),
    )


def append(store: Store, write: Write) -> int:
    if isinstance(write, BatchPredictions):
        return store.append_batch_predictions(write)
    return store.append_predictions(write)


def encode(write: Write) -> None:
    """What appending encodes before it reaches the database: the in-process floor."""
    if isinstance(write, BatchPredictions):
        encode_batch(write)
    else:
        [prediction_row(record) for record in write]


def prediction_key(tag: str, sequence: int) -> str:
    return f"{tag}-order-{sequence:08d}"


def build_records(
    row_count: int, batch_size: int, tag: str, start: datetime, keys: bool = False
) -> list[Write]:
    """What to append, already grouped into the writes it is appended in."""
    rng = random.Random(42)
    batch_count = -(-row_count // batch_size)
    batches: list[Write] = []
    for batch_number in range(batch_count):
        version = str(1 + batch_number * VERSION_COUNT // batch_count)
        from_batch_inferer = batch_number % 2 == 0
        rows_here = min(batch_size, row_count - batch_number * batch_size)
        records = []
        for position in range(rows_here):
            sequence = batch_number * batch_size + position
            positive = rng.random()
            records.append(
                PredictionRecord(
                    model_name="bench-model",
                    model_version=version,
                    input_row={
                        f"f{feature:02d}": rng.gauss(0, 1) for feature in range(FEATURE_COUNT)
                    },
                    prediction=int(positive > 0.5),
                    probabilities={"0": 1 - positive, "1": positive},
                    source=PredictionSource.BATCH
                    if from_batch_inferer
                    else PredictionSource.ONLINE,
                    batch_id=f"{tag}-batch-{batch_number:04d}" if from_batch_inferer else None,
                    request_id=None
                    if from_batch_inferer
                    else f"{tag}-request-{batch_number:04d}-{position // ROWS_PER_REQUEST:04d}",
                    row_index=position if from_batch_inferer else position % ROWS_PER_REQUEST,
                    latency_ms=rng.uniform(1, 10),
                    created_at=start + timedelta(milliseconds=sequence),
                    prediction_key=prediction_key(tag, sequence) if keys else None,
                )
            )
        batches.append(as_chunk(records) if from_batch_inferer else records)
    return batches


def time_queries(
    store: Store, tag: str, start: datetime, row_count: int, batch_size: int, keyed: bool
) -> list[tuple[str, int, float, float]]:
    """(query, rows returned, p50 ms, p99 ms) for each common query."""
    middle_batch = (row_count // batch_size) // 2 // 2 * 2  # an even number: a batch-inferer batch
    online_batch = middle_batch + 1
    window_start = start + timedelta(milliseconds=row_count // 2)
    queries: list[tuple[str, Callable[[], Any]]] = [
        (
            "model+version, limit 1000",
            lambda: store.query_predictions(
                model_name="bench-model", model_version="2", limit=1000
            ),
        ),
        (
            "model+version, newest 100",
            lambda: store.query_predictions(
                model_name="bench-model", model_version="2", limit=100, newest_first=True
            ),
        ),
        (
            "batch id (1 batch)",
            lambda: store.query_predictions(batch_id=f"{tag}-batch-{middle_batch:04d}"),
        ),
        (
            "request id (1 request)",
            lambda: store.query_predictions(request_id=f"{tag}-request-{online_batch:04d}-0003"),
        ),
        (
            "time range of 1 s",
            lambda: store.query_predictions(
                since=window_start, until=window_start + timedelta(seconds=1), limit=1000
            ),
        ),
        (
            "count model+version",
            lambda: store.count_predictions(model_name="bench-model", model_version="2"),
        ),
        (
            "count time range of 10 s",
            lambda: store.count_predictions(
                since=window_start, until=window_start + timedelta(seconds=10)
            ),
        ),
    ]
    # Outcomes for 100 rows of the online request batch (10 requests of 10 rows): by their ids
    # and rows always, by their keys when the rows have them. A write each, replacing the last.
    first_row = online_batch * batch_size
    by_row = [
        Outcome(
            kind="request",
            key=f"{tag}-request-{online_batch:04d}-{position // ROWS_PER_REQUEST:04d}",
            row_index=position % ROWS_PER_REQUEST,
            label=1,
        )
        for position in range(OUTCOMES_PER_CALL)
    ]
    queries.append(
        (
            f"record {OUTCOMES_PER_CALL} outcomes by id+row",
            lambda: store.record_outcomes(by_row).labelled,
        )
    )
    if keyed:
        by_key = [
            Outcome(kind="prediction_key", key=prediction_key(tag, first_row + position), label=1)
            for position in range(OUTCOMES_PER_CALL)
        ]
        queries.append(
            (
                f"record {OUTCOMES_PER_CALL} outcomes by key",
                lambda: store.record_outcomes(by_key).labelled,
            )
        )
    results = []
    for label, run_query in queries:
        timings_ms = []
        answer: Any = None
        for _ in range(QUERY_REPEATS):
            began = time.perf_counter()
            answer = run_query()
            timings_ms.append((time.perf_counter() - began) * 1000)
        rows = answer if isinstance(answer, int) else len(answer)
        p99 = statistics.quantiles(timings_ms, n=100)[98]
        results.append((label, rows, statistics.median(timings_ms), p99))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", help="store URI (default: a fresh SQLite file in a temp folder)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--keys", action="store_true", help="give every row a prediction key")
    arguments = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-store-") as scratch:
        uri = arguments.uri or f"sqlite:///{Path(scratch) / 'bench.db'}"
        tag = uuid.uuid4().hex[:8]  # fresh ids, so a rerun on a kept store is not deduplicated
        start = datetime.now(UTC).replace(microsecond=0)

        began = time.perf_counter()
        batches = build_records(arguments.rows, arguments.batch_size, tag, start, arguments.keys)
        build_seconds = time.perf_counter() - began

        began = time.perf_counter()
        for write in batches:
            encode(write)
        encode_seconds = time.perf_counter() - began

        with open_store(uri) as store:
            began = time.perf_counter()
            inserted = sum(append(store, write) for write in batches)
            append_seconds = time.perf_counter() - began
            # A service never holds 100,000 records: let the garbage collector forget them
            # rather than rescan them during every query below.
            del batches
            gc.collect()
            query_results = time_queries(
                store, tag, start, arguments.rows, arguments.batch_size, arguments.keys
            )

    print(f"store: {store!r}")
    print(
        f"records: {arguments.rows:,} in batches of {arguments.batch_size:,}, "
        f"{FEATURE_COUNT} features each{', each with a prediction key' if arguments.keys else ''}"
    )
    print(f"build records (not timed as append): {build_seconds:.2f} s")
    print(
        f"append: {append_seconds:.2f} s, {inserted / append_seconds:,.0f} records/s "
        f"({inserted:,} inserted)"
    )
    print(
        f"in-process floor (encode rows, no database): {encode_seconds:.2f} s, "
        f"{arguments.rows / encode_seconds:,.0f} records/s"
    )
    print()
    print(f"{'query':<28} {'rows':>7} {'p50 ms':>9} {'p99 ms':>9}   ({QUERY_REPEATS} runs each)")
    for label, rows, p50, p99 in query_results:
        print(f"{label:<28} {rows:>7,} {p50:>9.2f} {p99:>9.2f}")

    if inserted != arguments.rows:
        print(f"FAIL: {inserted:,} rows inserted, expected {arguments.rows:,}", file=sys.stderr)
        return 1
    if append_seconds >= APPEND_TARGET_SECONDS:
        print(
            f"FAIL: append took {append_seconds:.2f} s, target under {APPEND_TARGET_SECONDS:.0f} s",
            file=sys.stderr,
        )
        return 1
    print(f"\nOK: append under {APPEND_TARGET_SECONDS:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
