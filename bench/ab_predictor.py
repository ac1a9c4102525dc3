"""Alternating-rounds comparison of predictor builds and protocols, read from h2load.

    python bench/ab_predictor.py --build main=/work/main/.venv/bin/mlp --build new=.venv/bin/mlp
        [--protocol native --protocol v2 --protocol v2-matrix] [--rounds 6] [--calls 400]
        [--callers 8]

Registers bench_predictor.py's forest (StandardScaler + 100 trees on
examples/data/credit_fraud_sample.csv, 30 double features) in a temporary MLflow store, starts
one `mlp predictor` per build (logging off), and then, round after round, measures every
(build, protocol) pair in a rotating order: `--calls` sequential one-row calls (p50), then
`--calls` more from `--callers` concurrent h2load streams (rows/s). For both it also reads the
predictor process's CPU time (user + system, all its threads) per call: on a machine shared
with other work, wall-clock figures swing with the neighbours' load, while the CPU a call
costs the server moves much less. The model's in-process floor is timed between them. Only
figures taken in the same rounds are compared.

Protocols: `native` is `Predictor/Predict` with one `Frame`; `v2` is `ModelInfer` with one FP64
tensor per column, raw contents (what tritonclient sends), asking for `prediction` only, like
the native call; `v2-matrix` is one [rows, columns] FP64 tensor (a build must accept it);
`native-keyed` is `native` with one more double column named as the key column (`key_column`),
which the predictor takes off before the model (a build must accept it).
Needs h2load (Debian's nghttp2-client).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from harness import BENCH_MODELS, credit_fraud_features, register_models, served_estimator

MODEL = BENCH_MODELS["forest"]
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
PATHS = {
    "native": "/mlplatform.v1.Predictor/Predict",
    "native-keyed": "/mlplatform.v1.Predictor/Predict",
    "v2": "/inference.GRPCInferenceService/ModelInfer",
    "v2-matrix": "/inference.GRPCInferenceService/ModelInfer",
}


def request_body(protocol: str, row: pd.DataFrame) -> bytes:
    """One gRPC message (flag, length, bytes) of `row` in `protocol`."""
    from inference import grpc_predict_v2_pb2 as v2

    from mlplatform.client.frames import dataframe_to_frame
    from mlplatform.v1 import predictor_pb2

    if protocol == "native":
        message = predictor_pb2.PredictRequest(inputs=dataframe_to_frame(row))
    elif protocol == "native-keyed":
        keyed = row.assign(order_id=np.arange(1001.0, 1001.0 + len(row)))
        message = predictor_pb2.PredictRequest(
            inputs=dataframe_to_frame(keyed), key_column="order_id"
        )
    else:
        message = v2.ModelInferRequest(model_name=MODEL, outputs=[{"name": "prediction"}])
        if protocol == "v2":
            for name in row.columns:
                message.inputs.add(name=name, datatype="FP64", shape=[len(row)])
                message.raw_input_contents.append(row[name].to_numpy(np.float64).tobytes())
        else:
            message.inputs.add(name="input-0", datatype="FP64", shape=list(row.shape))
            message.raw_input_contents.append(row.to_numpy(np.float64).tobytes())
    data = message.SerializeToString()
    return b"\x00" + len(data).to_bytes(4, "big") + data


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def predictor(mlp: str, tracking_uri: str, store_uri: str) -> Iterator[tuple[str, int]]:
    arguments = [mlp, "predictor", "--model", MODEL, "--host", "127.0.0.1", "--port", "0"]
    arguments += ["--metrics-port", "-1", "--no-log-predictions"]
    environment = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLP_STORE_URI": store_uri}
    process = subprocess.Popen(
        arguments, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        address = None
        for line in process.stderr:
            match = LISTENING.search(line)
            if match:
                address = f"127.0.0.1:{match.group(1)}"
            if address and "serving " in line:
                threading.Thread(target=process.stderr.read, daemon=True).start()
                break
        else:
            raise RuntimeError(f"{mlp} predictor exited before serving")
        yield address, process.pid
    finally:
        process.terminate()
        process.wait(60)


def h2load(url: str, body: Path, streams: int, *options: str) -> str:
    arguments = ["h2load", "-c", "1", "-m", str(streams), *options, "-d", str(body)]
    arguments += ["-H", "content-type: application/grpc", "-H", "te: trailers", url]
    output = subprocess.run(arguments, capture_output=True, text=True, check=True).stdout
    if " 0 failed, 0 errored, 0 timeout" not in output:
        raise RuntimeError(f"h2load calls failed:\n{output}")
    return output


def sequential_p50_ms(url: str, body: Path, calls: int, log: Path) -> float:
    log.unlink(missing_ok=True)
    h2load(url, body, 1, "-n", str(calls + 1), f"--log-file={log}")
    times = sorted(int(line.split("\t")[2]) / 1000 for line in log.read_text().splitlines()[1:])
    return times[len(times) // 2]


def rate(url: str, body: Path, streams: int, calls: int) -> float:
    output = h2load(url, body, streams, "-n", str(calls))
    match = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", output)
    if match is None:
        raise RuntimeError(f"no rate in h2load's output:\n{output}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", action="append", required=True, help="LABEL=path/to/mlp")
    parser.add_argument("--protocol", action="append", choices=sorted(PATHS))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--callers", type=int, default=8)
    arguments = parser.parse_args()
    if shutil.which("h2load") is None:
        raise SystemExit("h2load is not installed (apt-get install nghttp2-client)")
    builds = dict(build.split("=", 1) for build in arguments.build)
    protocols = arguments.protocol or ["native", "v2"]
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as folder, ExitStack() as servers:
        root = Path(folder)
        print("training and registering the forest...", flush=True)
        tracking_uri = register_models(root)
        forest = served_estimator(tracking_uri, f"{MODEL}@production")  # n_jobs=1, as served
        row = credit_fraud_features().head(1)
        bodies = {}
        for protocol in protocols:
            bodies[protocol] = root / f"{protocol}.grpc"
            bodies[protocol].write_bytes(request_body(protocol, row))
        store_uri = f"sqlite:///{root / 'store.db'}"
        servers_by_label = {
            # A store each: builds may hold different store schema versions.
            label: servers.enter_context(predictor(mlp, tracking_uri, f"{store_uri}-{label}"))
            for label, mlp in builds.items()
        }
        addresses = {label: server[0] for label, server in servers_by_label.items()}
        pids = {label: server[1] for label, server in servers_by_label.items()}
        pairs = [(label, protocol) for label in builds for protocol in protocols]
        p50s: dict[tuple[str, str], list[float]] = {pair: [] for pair in pairs}
        rates: dict[tuple[str, str], list[float]] = {pair: [] for pair in pairs}
        cpu_sequential: dict[tuple[str, str], list[float]] = {pair: [] for pair in pairs}
        cpu_concurrent: dict[tuple[str, str], list[float]] = {pair: [] for pair in pairs}
        floors: list[float] = []
        for round_index in range(arguments.rounds):
            shift = round_index % len(pairs)
            for label, protocol in pairs[shift:] + pairs[:shift]:
                url = f"http://{addresses[label]}{PATHS[protocol]}"
                floor = []
                for _ in range(50):
                    started = time.perf_counter()
                    forest.predict(row)
                    floor.append(time.perf_counter() - started)
                floors.append(statistics.median(floor) * 1000)
                body, log, calls = bodies[protocol], root / "h2load.log", arguments.calls
                cpu_before = cpu_seconds(pids[label])
                p50s[label, protocol].append(sequential_p50_ms(url, body, calls, log))
                cpu_between = cpu_seconds(pids[label])
                rates[label, protocol].append(rate(url, body, arguments.callers, calls))
                cpu_after = cpu_seconds(pids[label])
                cpu_sequential[label, protocol].append((cpu_between - cpu_before) / (calls + 1))
                cpu_concurrent[label, protocol].append((cpu_after - cpu_between) / calls)
            print(f"round {round_index + 1} done", flush=True)
    print(
        f"\nfloor (forest.predict on one row, in process) p50 of rounds: "
        f"{statistics.median(floors):.2f} ms ({min(floors):.2f}-{max(floors):.2f})"
    )
    print(
        f"{'build':<10}{'protocol':<11}{'p50 ms':>8}{'range':>14}"
        f"{f'{arguments.callers} streams rows/s':>22}{'range':>14}"
        f"{'CPU ms/call seq':>17}{f'CPU ms/call {arguments.callers}':>15}"
    )
    for pair in pairs:
        p50, rows = p50s[pair], rates[pair]
        print(
            f"{pair[0]:<10}{pair[1]:<11}{statistics.median(p50):>8.2f}"
            f"{f'{min(p50):.2f}-{max(p50):.2f}':>14}{statistics.median(rows):>22.0f}"
            f"{f'{min(rows):.0f}-{max(rows):.0f}':>14}"
            f"{statistics.median(cpu_sequential[pair]) * 1000:>17.3f}"
            f"{statistics.median(cpu_concurrent[pair]) * 1000:>15.3f}"
        )
    first = pairs[0]
    print(f"\nper round, against {first[0]} {first[1]} (p50 difference ms; rows/s ratio):")
    for pair in pairs[1:]:
        differences = [b - a for a, b in zip(p50s[first], p50s[pair], strict=True)]
        ratios = [b / a for a, b in zip(rates[first], rates[pair], strict=True)]
        cpu = {
            kind: [b / a for a, b in zip(figures[first], figures[pair], strict=True)]
            for kind, figures in (("seq", cpu_sequential), ("conc", cpu_concurrent))
        }
        print(
            f"  {pair[0]} {pair[1]}: p50 {statistics.median(differences):+.2f} ms "
            f"(rounds {', '.join(f'{d:+.2f}' for d in differences)}); rows/s "
            f"x{statistics.median(ratios):.3f} (rounds {', '.join(f'{r:.2f}' for r in ratios)}); "
            f"CPU per call x{statistics.median(cpu['seq']):.3f} sequential, "
            f"x{statistics.median(cpu['conc']):.3f} under {arguments.callers} streams (rounds "
            f"{', '.join(f'{r:.2f}' for r in cpu['conc'])})"
        )
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    sys.exit(main())
