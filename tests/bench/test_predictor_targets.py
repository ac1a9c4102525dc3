"""The predictor benchmark's target verdicts: each figure lands on the right side of its target."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_predictor.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_predictor", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


def test_each_target_is_met_or_missed_by_its_own_figure(bench: ModuleType) -> None:
    met = bench.Figures(
        "forest", "python", floor_ms=2.0, p50_ms=2.9, logged_p50_ms=2.95, speedups=[4.0, 5.2, 5.5]
    )
    missed = bench.Figures(
        "forest", "h2load", floor_ms=2.0, p50_ms=3.2, logged_p50_ms=3.4, speedups=[4.9, 4.95, 5.3]
    )
    [first, second] = bench.target_verdicts([met, missed], 8)
    assert first == (
        "forest from python: p50 - floor +0.90 ms (<= 1): met; "
        "8 callers 5.20x (>= 5x): met; logging +1.7% of p50 (< 5%): met"
    )
    assert second == (
        "forest from h2load: p50 - floor +1.20 ms (<= 1): MISSED; "
        "8 callers 4.95x (>= 5x): MISSED; logging +6.2% of p50 (< 5%): MISSED"
    )


def test_rows_without_a_model_or_figures_get_no_verdict(bench: ModuleType) -> None:
    trivial = bench.Figures("client vs trivial", "h2load", p50_ms=0.3, speedups=[2.0])
    latency_only = bench.Figures("forest", "h2load", floor_ms=2.0, p50_ms=2.5)
    assert bench.target_verdicts([trivial, latency_only], 8) == [
        "forest from h2load: p50 - floor +0.50 ms (<= 1): met"
    ]


def test_the_p50_verdict_splits_the_gap_between_grpc_and_the_predictors_own_code(
    bench: ModuleType,
) -> None:
    row = bench.Figures("forest", "h2load", floor_ms=3.0, p50_ms=4.4, bare_p50_ms=3.8)
    assert row.around_ms == pytest.approx(0.8)
    assert row.own_ms == pytest.approx(0.6)
    assert bench.target_verdicts([row], 8) == [
        "forest from h2load: p50 - floor +1.40 ms (<= 1): MISSED (the model behind a bare gRPC "
        "handler +0.80, the predictor's own code +0.60)"
    ]


def test_the_bare_server_answers_its_models_prediction(bench: ModuleType, tmp_path: Path) -> None:
    """The bench's forest, registered in a real MLflow store, behind the bare server in its own
    process, called over gRPC on a loopback port."""
    import grpc

    from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

    tracking_uri, frames = bench.register_models(tmp_path, with_pycaret=False)
    row = frames["bench_sklearn_rf"].head(1)
    expected = bench.loaded_estimator(tracking_uri, "bench_sklearn_rf").predict(row)[0]
    request = predictor_pb2.PredictRequest()
    with (
        bench.trivial_process("bench_sklearn_rf", tracking_uri) as bare,
        grpc.insecure_channel(bare) as channel,
    ):
        response = predictor_pb2_grpc.PredictorStub(channel).Predict(request, timeout=30)
    assert response.model_name == "bare"
    assert list(response.predictions.int64_values.values) == [int(expected)]
