"""Benchmark of the trainer's own cost.

Run: python bench/bench_trainer.py [--rows 5000] [--latency-jobs 10] [--plots on|off|both]
                                   [--rounds 1] [--latency-only]

1. Overhead: the example pipeline (SMOTE, PCA, trigonometry features, rf + lightgbm + knn,
   fold 3, blend and stack, register) through `PipelineRunner` (what `mlp train` and the
   workers run: store records, an MLflow run per evaluated model, model logging and
   registration) against the same PyCaret calls made directly, on the same data and seed.
   Target: within 10% of the direct time.
   With `--plots both`, the platform side runs twice, with the default plots logged and with
   plotting off, and the plots' share of the run is printed (budget: 15%); `--rounds N`
   repeats the pair in alternating order (off/on, on/off, ...) and judges the median share.
2. Queue-to-start latency: from publishing a `SubmitPipeline` to the idle worker's
   "started" event, over the real RabbitMQ at MLP_BROKER_URL.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from mlplatform.client import messaging  # noqa: E402
from mlplatform.client.pipelines import load_pipeline_file, parse_pipeline  # noqa: E402
from mlplatform.client.submit import submit_pipeline  # noqa: E402
from mlplatform.common.consumer import QueueWorker  # noqa: E402
from mlplatform.common.store import open_store  # noqa: E402
from mlplatform.common.transformers import TrigonometryFeatures  # noqa: E402
from mlplatform.trainer.runner import PipelineRunner  # noqa: E402
from mlplatform.trainer.worker import BrokerEvents, TrainerHandler  # noqa: E402
from mlplatform.v1 import messages_pb2  # noqa: E402

SESSION_ID = 123


def sample(rows: int, folder: Path) -> Path:
    spec = importlib.util.spec_from_file_location(
        "sample", REPO / "examples" / "make_credit_fraud_sample.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = folder / "fraud.csv"
    module.make_sample(rows).to_csv(path, index=False)
    return path


def through_platform(data_path: Path, folder: Path, plots: bool = True) -> tuple[float, float]:
    """Seconds of the whole run, and of its plotting step (timed inside the run)."""
    definition = load_pipeline_file(REPO / "examples" / "credit_fraud_from_file.json")
    definition.pipeline[0].ml_steps[0].load_data_from_file.path = str(data_path)
    definition.experiment_config.log_plots.enabled = plots
    label = f"{'plots' if plots else 'no-plots'}-{time.monotonic_ns()}"
    store = open_store(f"sqlite:///{folder / f'store-{label}.db'}")
    runner = PipelineRunner(store, f"sqlite:///{folder / f'mlflow-{label}.db'}")
    started = time.perf_counter()
    record = runner.run(messages_pb2.SubmitPipeline(pipeline_id=label, definition=definition))
    elapsed = time.perf_counter() - started
    assert record.status.value == "succeeded", record.error
    store.close()
    train = record.step("train_model")
    plots_seconds = train.findings.get("plots_seconds", 0.0) if train is not None else 0.0
    return elapsed, plots_seconds


def direct(data_path: Path, folder: Path, plot_costs: bool = False) -> float:
    """The same work with PyCaret alone: read, setup, compare, blend, stack, hold-out, save.

    With `plot_costs`, afterwards (outside the timing) each PyCaret plot of the winner is
    timed alone: the figures behind the default plot list."""
    from pycaret.classification import ClassificationExperiment

    started = time.perf_counter()
    data = pd.read_csv(data_path)
    features = [name for name in data.columns if name != "Class"]
    experiment = ClassificationExperiment()
    experiment.setup(
        data,
        target="Class",
        fold=3,
        n_jobs=1,
        session_id=SESSION_ID,
        verbose=False,
        html=False,
        log_experiment=False,
        system_log=False,
        fix_imbalance=True,
        pca=True,
        custom_pipeline=[("trigonometry_features", TrigonometryFeatures(columns=features))],
        custom_pipeline_position=-3,
    )
    selected = experiment.compare_models(
        include=["rf", "lightgbm", "knn"], n_select=2, sort="F1", verbose=False, errors="raise"
    )
    experiment.blend_models(selected, optimize="F1", verbose=False)
    best = experiment.stack_models(selected, optimize="F1", verbose=False)
    experiment.predict_model(best, verbose=False)
    experiment.save_model(best, str(folder / "direct"), verbose=False)
    elapsed = time.perf_counter() - started
    if plot_costs:
        time_each_plot(experiment, best, folder)
    return elapsed


def time_each_plot(experiment: object, model: object, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    print("plots of the winner (a stack), each alone:")
    for plot in ("auc", "confusion_matrix", "pr", "class_report", "feature", "calibration",
                 "learning", "vc"):  # fmt: skip
        started = time.perf_counter()
        try:
            experiment.plot_model(model, plot=plot, save=str(folder), verbose=False)  # type: ignore[attr-defined]
            outcome = f"{time.perf_counter() - started:6.1f} s"
        except Exception as error:
            outcome = f"skipped ({type(error).__name__}: {str(error)[:60]})"
        finally:
            plt.close("all")
        print(f"  {plot:<17} {outcome}")


def queue_to_start(jobs: int, data_path: Path, folder: Path, broker_url: str) -> list[float]:
    queue = messaging.WorkQueue(f"bench.{os.getpid()}.pipelines", wait_ms=500)
    store = open_store(f"sqlite:///{folder / 'latency-store.db'}")
    runner = PipelineRunner(
        store, f"sqlite:///{folder / 'latency-mlflow.db'}", BrokerEvents(broker_url)
    )
    worker = QueueWorker(
        queue, TrainerHandler(runner, store, "bench"), store, broker_url, name="bench"
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    worker.consuming.wait(30)
    document = {
        "pipeline": [{"MLSteps": [{"load_data_from_file": {"path": str(data_path)}}]}],
        "experiment_config": {
            "experiment_name": "latency",
            "problem_type": "classification",
            "target": "Class",
        },
    }
    definition = parse_pipeline(document)
    latencies = []
    for _ in range(jobs + 1):  # the first job warms the worker up (MLflow tables) and is dropped
        published = time.perf_counter()
        submission = submit_pipeline(definition, broker_url=broker_url, follow=True, queue=queue)
        assert submission.events is not None
        for event in submission.events:
            if event.status == messages_pb2.RUN_STATUS_RUNNING and event.message.startswith(
                "started"
            ):
                latencies.append(time.perf_counter() - published)
    worker.stop()
    thread.join(60)
    latencies = latencies[1:]
    with messaging.open_channel(broker_url) as (channel, _version):
        for name in (queue.name, queue.dead_letter, queue.wait):
            channel.queue_delete(name)
    return latencies


def print_latencies(latencies: list[float]) -> None:
    latencies = sorted(latencies)
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))] * 1000
    print(
        f"queue-to-start on an idle worker ({len(latencies)} jobs): "
        f"p50 {p50:.0f} ms, p99 {p99:.0f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--latency-jobs", type=int, default=10)
    parser.add_argument(
        "--plots",
        choices=("on", "off", "both"),
        default="both",
        help="Log the default plots on the platform side, not, or run it both ways.",
    )
    parser.add_argument("--rounds", type=int, default=1, help="With --plots both: pairs run.")
    parser.add_argument(
        "--plot-costs", action="store_true", help="Also time each PyCaret plot of the winner."
    )
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="Only part 2, queue-to-start (part 1 trains the example pipeline for minutes).",
    )
    args = parser.parse_args()
    broker_url = os.environ.get("MLP_BROKER_URL", messaging.DEFAULT_BROKER_URL)
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as temp:
        folder = Path(temp)
        # The pipelines read the sample from this folder: let the trainer read it, as an
        # operator's MLP_DATA_ROOTS would.
        roots = [str(folder), os.environ.get("MLP_DATA_ROOTS") or str(REPO / "examples")]
        os.environ["MLP_DATA_ROOTS"] = ",".join(roots)
        data_path = sample(args.rows, folder)
        if args.latency_only:
            print_latencies(queue_to_start(args.latency_jobs, data_path, folder, broker_url))
            return 0
        # Imports and first-use costs (PyCaret, MLflow's tables) charged to neither side.
        import pycaret.classification  # noqa: F401

        direct_seconds = direct(data_path, folder, args.plot_costs)
        print(f"example pipeline on {args.rows:,} rows (rf, lightgbm, knn; fold 3; blend + stack)")
        print(f"  direct PyCaret calls   {direct_seconds:8.1f} s")
        orders = {"on": [(True,)], "off": [(False,)], "both": [(False, True), (True, False)]}
        rounds = args.rounds if args.plots == "both" else 1
        timings: dict[bool, list[float]] = {True: [], False: []}
        for round_index in range(rounds):
            options = orders[args.plots]
            for plots in options[round_index % len(options)]:
                seconds, plots_seconds = through_platform(data_path, folder, plots)
                timings[plots].append(seconds)
                label = "with plots" if plots else "no plots  "
                overhead = seconds / direct_seconds - 1
                print(f"  platform, {label}   {seconds:8.1f} s   overhead {overhead:+.1%}")
                if plots_seconds:
                    # Timed inside the run: immune to the machine's swings between runs.
                    share = plots_seconds / (seconds - plots_seconds)
                    print(f"    of which plotting {plots_seconds:6.1f} s: {share:+.1%} of the rest")
        # The platform's own overhead is judged without plots: PyCaret's plotting is extra work
        # the direct side does not do; plots have their own budget.
        platform_seconds = statistics.median(timings[False] or timings[True])
        overhead = platform_seconds / direct_seconds - 1
        if timings[True] and timings[False]:
            shares = [on / off - 1 for on, off in zip(timings[True], timings[False], strict=True)]
            plots_share = statistics.median(shares)
            verdict = "OK" if plots_share <= 0.15 else "ABOVE BUDGET"
            each = ", ".join(f"{share:+.1%}" for share in shares)
            print(f"  plots add {plots_share:+.1%} (median of {each}; {verdict}: budget 15%)")
        if args.latency_jobs < 1:
            return 0 if overhead <= 0.10 else 1
        print_latencies(queue_to_start(args.latency_jobs, data_path, folder, broker_url))
    verdict = "OK" if overhead <= 0.10 else "ABOVE TARGET"
    print(f"{verdict}: overhead target is 10%")
    return 0 if overhead <= 0.10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
