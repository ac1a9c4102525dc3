"""Compiled serving against scikit-learn serving: one row, in process and end to end.

    .venv/bin/python bench/bench_compiled.py [--calls 2000] [--rounds 3] [--seconds 3]

Registers three models on the fraud sample (30 double columns): a StandardScaler + 100-tree
forest, and PyCaret `rf` and `lightgbm` pipelines. For each:
- in process, alternating call by call: the floor (the loaded pipeline's predict with
  probabilities, as the predictor calls it with `--compile off`) and the compiled model's;
- end to end over native gRPC with h2load (Debian's nghttp2-client: a C client, one
  pre-encoded request): `mlp predictor --compile off` and `--compile auto` side by side. Per round:
  `--calls` sequential calls against each, then `--seconds` of 8 streams against each
  (throughput), rounds alternating so the shared machine's load falls on all alike.
Prints p50/p99 and rows/s, then the issue's targets on the forest (p50 <= 0.6 ms end to end;
8-caller throughput >= 5x scikit-learn serving's).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from bench_predictor import H2load  # beside this file
from harness import CREDIT_FRAUD, interleaved, percentile, predictor_process

from mlplatform.client.frames import dataframe_to_frame
from mlplatform.common.compiled_serving import CompileOptions
from mlplatform.common.model_loading import ModelReference, load_model
from mlplatform.v1 import predictor_pb2

PREDICT = "/mlplatform.v1.Predictor/Predict"
MODELS = ("bench_forest", "bench_pycaret_rf", "bench_pycaret_lightgbm")
P50_TARGET_MS = 0.6
THROUGHPUT_TARGET = 5.0


@dataclass
class Row:
    """One model's figures (milliseconds, rows/s)."""

    model: str
    backend: str = ""
    floor_ms: float = 0.0
    compiled_ms: float = 0.0
    sequential: dict[str, list[float]] = field(default_factory=dict)
    rates: dict[str, list[float]] = field(default_factory=dict)

    def p(self, server: str, share: float) -> float:
        return percentile(self.sequential[server], share) * 1000

    def rate(self, server: str) -> float:
        return statistics.median(self.rates[server])


def register_models(root: Path, names: list[str]) -> tuple[str, pd.DataFrame]:
    """The models named (of MODELS), registered with an input example; the tracking URI and
    the features."""
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from pycaret.classification import ClassificationExperiment
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = mlflow.create_experiment("bench", artifact_location=(root / "art").as_uri())
    data = pd.read_csv(CREDIT_FRAUD)
    features = data.drop(columns="Class")

    def register(name: str, estimator: object) -> None:
        with mlflow.start_run(experiment_id=experiment_id):
            info = mlflow.sklearn.log_model(
                estimator,
                name="model",
                signature=infer_signature(features, estimator.predict(features.head(5))),  # type: ignore[attr-defined]
                input_example=features.head(2),
                serialization_format="cloudpickle",
                registered_model_name=name,
                pip_requirements=["scikit-learn"],
            )
        MlflowClient(tracking_uri).set_registered_model_alias(
            name, "production", info.registered_model_version
        )

    forest = make_pipeline(
        StandardScaler(), RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=-1)
    )
    if "bench_forest" in names:
        register("bench_forest", forest.fit(features, data["Class"]))
    pycaret = [name.removeprefix("bench_pycaret_") for name in names if "pycaret" in name]
    if not pycaret:
        return tracking_uri, features
    experiment = ClassificationExperiment()
    experiment.setup(data, target="Class", session_id=0, n_jobs=1, verbose=False, html=False)
    for estimator in pycaret:
        pipeline = experiment.finalize_model(
            experiment.create_model(estimator, fold=2, verbose=False)
        )
        register(f"bench_pycaret_{estimator}", pipeline)
    return tracking_uri, features


def in_process(row: Row, tracking_uri: str, features: pd.DataFrame, calls: int) -> None:
    """Floor and compiled p50 of one checked row, with probabilities, alternating."""
    reference = ModelReference.parse(row.model)
    plain = load_model(reference, tracking_uri)
    compiled = load_model(reference, tracking_uri, compile_options=CompileOptions())
    row.backend = compiled.backend if compiled.compiled else f"sklearn ({compiled.compile_reason})"
    checked = plain.check(features.head(1))
    timings = interleaved(
        {
            "floor": lambda: plain.predict(checked, True),
            "compiled": lambda: compiled.predict(checked, True),
        },
        calls,
    )
    row.floor_ms = percentile(timings["floor"], 0.5) * 1000
    row.compiled_ms = percentile(timings["compiled"], 0.5) * 1000


def end_to_end(
    row: Row, tracking_uri: str, features: pd.DataFrame, arguments: argparse.Namespace
) -> None:
    """h2load against `--compile off` and `--compile auto`, in rounds."""
    request = predictor_pb2.PredictRequest(
        inputs=dataframe_to_frame(features.head(1)), include_probabilities=True
    ).SerializeToString()
    store_uri = f"sqlite:///{arguments.workdir / 'store.db'}"
    with (
        predictor_process(tracking_uri, row.model, store_uri, False, ["--compile", "off"]) as off,
        predictor_process(tracking_uri, row.model, store_uri, False, ["--compile", "auto"]) as on,
    ):
        clients = {
            "off": H2load.grpc(off, PREDICT, request, arguments.workdir / "off"),
            "compiled": H2load.grpc(on, PREDICT, request, arguments.workdir / "on"),
        }
        for _ in range(arguments.rounds):
            for server, client in clients.items():
                row.sequential.setdefault(server, []).extend(client.sequential(arguments.calls))
            for server in ("off", "compiled"):
                rate = clients[server].rate(arguments.seconds, arguments.callers)
                row.rates.setdefault(server, []).append(rate)


def print_figures(rows: list[Row], callers: int) -> None:
    print(
        "| model | served by | floor (sklearn, in process) | compiled, in process | "
        "e2e --compile off p50 / p99 | e2e compiled p50 / p99 | "
        f"{callers} callers rows/s off | {callers} callers rows/s compiled | x |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row.model} | {row.backend} | {row.floor_ms:.3f} ms | {row.compiled_ms:.3f} ms | "
            f"{row.p('off', 0.5):.3f} / {row.p('off', 0.99):.3f} ms | "
            f"{row.p('compiled', 0.5):.3f} / {row.p('compiled', 0.99):.3f} ms | "
            f"{row.rate('off'):.0f} | "
            f"{row.rate('compiled'):.0f} | {row.rate('compiled') / row.rate('off'):.1f} |"
        )
    forest = next((row for row in rows if row.model == "bench_forest"), None)
    if forest is None:
        return
    p50, speedup = forest.p("compiled", 0.5), forest.rate("compiled") / forest.rate("off")
    print(
        f"target forest p50 <= {P50_TARGET_MS} ms end to end: {p50:.3f} ms, "
        f"{'met' if p50 <= P50_TARGET_MS else 'missed'}"
    )
    print(
        f"target forest {callers}-caller throughput >= {THROUGHPUT_TARGET:.0f}x: {speedup:.1f}x, "
        f"{'met' if speedup >= THROUGHPUT_TARGET else 'missed'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="Sequential calls per round.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="Throughput run length.")
    parser.add_argument("--callers", type=int, default=8, help="Concurrent h2load streams.")
    parser.add_argument("--models", default=",".join(MODELS))
    arguments = parser.parse_args()
    if shutil.which("h2load") is None:
        raise SystemExit("h2load is not installed: apt-get install nghttp2-client")
    with tempfile.TemporaryDirectory(prefix="mlp-bench-compiled-") as folder:
        arguments.workdir = Path(folder)
        names = arguments.models.split(",")
        tracking_uri, features = register_models(Path(folder), names)
        rows = []
        for model in names:
            row = Row(model)
            in_process(row, tracking_uri, features, arguments.calls)
            end_to_end(row, tracking_uri, features, arguments)
            rows.append(row)
            print(f"measured {model}", flush=True)
    print_figures(rows, arguments.callers)


if __name__ == "__main__":
    main()
