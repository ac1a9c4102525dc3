"""Where one inferer's work goes: CPU time per row of each stage of a part, beside the floor.

    python bench/bench_inferer_stages.py [--rows 100000] [--rows-per-message 5000]
        [--chunk-rows 2048] [--probabilities]

The stages are the ones `mlp inferer` runs for each part, called here in one thread, one after
the other, on the same model and rows as bench_inferer.py: decoding the message, building the
frame, checking it, predicting each chunk, handing each chunk to the writer process (pickle on
the worker's side, unpickle on the writer's), encoding it for the store and the SQLite write.
The publisher's encoding is shown too: in bench_inferer.py it shares the machine.

Each stage is timed by the thread's CPU clock (`time.thread_time`), which other work on the
machine does not inflate, and by the wall clock. The sums per process say what each process
needs per row: the worker's sum against the model's own `predict` is the most one inferer can
reach of the in-process rate when its worker has a core to itself and the writer process
another. What a broker run loses beyond that is time the worker waits, not work it does.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bench_inferer import ALIAS, make_data, register_models  # beside this file
from harness import load_report, print_table

from mlplatform.client.frames import dataframe_to_frame, frame_to_dataframe
from mlplatform.common.model_loading import ModelReference, load_model
from mlplatform.common.store import BatchPredictions, open_store, utc_now
from mlplatform.common.store.sqlite_batch_rows import encode_batch, write_part
from mlplatform.v1 import messages_pb2

T = TypeVar("T")

#: stage -> (the process it runs in, its CPU seconds, its wall seconds)
Timings = dict[str, tuple[str, float, float]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rows-per-message", type=int, default=5000)
    parser.add_argument("--chunk-rows", type=int, default=2048)
    parser.add_argument("--probabilities", action="store_true")
    arguments = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    with load_report(), tempfile.TemporaryDirectory(prefix="bench-stages-") as folder:
        root = Path(folder)
        training, rows = make_data(arguments.rows)
        tracking_uri, _ = register_models(root, training, with_pycaret=False)
        model = load_model(ModelReference.parse(f"bench_sklearn_rf@{ALIAS}"), tracking_uri)
        model.predict(model.check(rows.head(arguments.chunk_rows)), with_probabilities=False)
        timings: Timings = {}

        def timed(stage: str, process: str, action: Callable[[], T]) -> T:
            cpu, wall = time.thread_time(), time.perf_counter()
            result = action()
            _, cpu_sum, wall_sum = timings.get(stage, (process, 0.0, 0.0))
            timings[stage] = (
                process,
                cpu_sum + time.thread_time() - cpu,
                wall_sum + time.perf_counter() - wall,
            )
            return result

        with open_store(f"sqlite:///{root / 'store.db'}") as store:
            for offset in range(0, arguments.rows, arguments.rows_per_message):
                part = rows.iloc[offset : offset + arguments.rows_per_message]
                body = timed(
                    "encode the message",
                    "publisher",
                    lambda: messages_pb2.BatchPredictionRequest(
                        batch_id="stages",
                        model="bench_sklearn_rf",
                        rows=dataframe_to_frame(part),  # noqa: B023 (called at once)
                        part_count=1,
                        row_offset=offset,  # noqa: B023
                    ).SerializeToString(),
                )
                request = timed(
                    "decode the message",
                    "worker",
                    lambda: messages_pb2.BatchPredictionRequest.FromString(body),  # noqa: B023
                )
                frame = timed(
                    "build the frame",
                    "worker",
                    lambda: frame_to_dataframe(request.rows),  # noqa: B023
                )
                checked = timed("check the rows", "worker", lambda: model.check(frame))  # noqa: B023
                predict_part(arguments, model, store, frame, checked, offset, timed)
        print_stages(timings, arguments.rows)


def predict_part(arguments, model, store, frame, checked, offset, timed) -> None:  # type: ignore[no-untyped-def]
    """The part's chunks: predicted, handed to the writer, encoded and written."""
    for start in range(0, len(checked), arguments.chunk_rows):
        chunk = checked.iloc[start : start + arguments.chunk_rows]
        output = timed(
            "predict (the floor)",
            "worker",
            lambda: model.predict(chunk, with_probabilities=arguments.probabilities),  # noqa: B023
        )
        predictions = BatchPredictions(
            model_name=model.name,
            model_version=model.version,
            batch_id="stages",
            row_offset=offset + start,
            inputs=frame.iloc[start : start + arguments.chunk_rows],
            predictions=output.predictions,
            probabilities=output.probabilities,
            class_names=model.class_names if output.probabilities is not None else (),
            latency_ms=0.0,
            created_at=utc_now(),
        )
        sent = timed("pickle for the writer", "worker", lambda: pickle.dumps(predictions))  # noqa: B023
        received = timed("unpickle", "writer", lambda: pickle.loads(sent))  # noqa: B023
        encoded = timed("encode for the store", "writer", lambda: encode_batch(received))  # noqa: B023

        def write() -> int:
            with store._write() as connection:  # the store's own write transaction
                return write_part(connection, encoded)  # noqa: B023

        timed("write to SQLite (commit: fsync)", "writer", write)


def print_stages(timings: Timings, row_count: int) -> None:
    per_row = 1e6 / row_count
    table = [
        (stage, process, f"{cpu * per_row:.2f}", f"{wall * per_row:.2f}")
        for stage, (process, cpu, wall) in timings.items()
    ]
    sums = {}
    for process in ("worker", "writer", "publisher"):
        sums[process] = sum(cpu for _, (owner, cpu, _) in timings.items() if owner == process)
        table.append((f"sum: {process}", process, f"{sums[process] * per_row:.2f}", ""))
    print(f"\n{row_count:,} rows; CPU and wall microseconds per row, per stage")
    print_table(("stage", "process", "CPU us/row", "wall us/row"), table)
    floor = timings["predict (the floor)"][1]
    print(
        f"\nthe worker's CPU per row is {sums['worker'] / floor:.2f}x the model's own: one "
        f"inferer can reach {floor / sums['worker']:.0%} of the in-process rate when its worker "
        f"has a core to itself (its writer needs {sums['writer'] / sums['worker']:.0%} of "
        "another)."
    )


if __name__ == "__main__":
    main()
