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
    off, auto = bench.OFF, bench.AUTO
    rows = [
        bench.Figures(off, bench.NATIVE, "python", 2.0, 2.9, 4.0, [1000.0, 1200.0]),
        bench.Figures(off, bench.V2_GRPC, "python", 2.0, 3.1, 4.0, [950.0, 1000.0]),
        bench.Figures(off, bench.LOGGED, "python", 2.0, 2.95, 4.0),
        bench.Figures(off, bench.ONE_CALLER, "python", rates=[200.0, 230.0]),
        # The compiled rows are no figures of issues 23 and 5.
        bench.Figures(auto, bench.NATIVE, "python", 0.1, 0.5, 1.0, [6000.0, 6000.0]),
        bench.Figures(auto, bench.V2_GRPC, "python", 0.1, 5.0, 9.0, [100.0, 100.0]),
        bench.Figures(off, bench.NATIVE, "h2load", 2.0, 3.2, 4.0, [1000.0, 1000.0]),
        bench.Figures(off, bench.V2_GRPC, "h2load", 2.0, 3.6, 4.0, [800.0, 900.0]),
        bench.Figures(off, bench.V2_REST, "h2load", 2.0, 5.0, 6.0, [500.0, 500.0]),
    ]
    assert bench.target_verdicts(rows, 8) == [
        "python: V2 gRPC p50 - native p50: +0.20 ms (<= 0.3 ms): met",
        "python: V2 gRPC 8-caller throughput / native: 89% (>= 90%): MISSED",
        "python: native p50 - floor: +0.90 ms (<= 1 ms): met",
        "python: native 8 callers / 1 caller: 5.11x (>= 5x): met",
        "python: logging on: +1.7% of p50 (< 5%): met",
        "h2load: V2 gRPC p50 - native p50: +0.40 ms (<= 0.3 ms): MISSED",
        "h2load: V2 gRPC 8-caller throughput / native: 85% (>= 90%): MISSED",
        "h2load: native p50 - floor: +1.20 ms (<= 1 ms): MISSED",
    ]


def test_the_compiled_targets_compare_compiled_native_with_compile_off(
    bench: ModuleType,
) -> None:
    off, auto = bench.OFF, bench.AUTO
    rows = [
        bench.Figures(off, bench.NATIVE, "h2load", 2.0, 3.0, 4.0, [1000.0, 1200.0, 1100.0]),
        bench.Figures(auto, bench.V2_GRPC, "h2load", 0.1, 0.3, 1.0, [9000.0, 9000.0, 9000.0]),
        bench.Figures(auto, bench.NATIVE, "h2load", 0.1, 0.61, 1.0, [5100.0, 5900.0, 5400.0]),
        bench.Figures(off, bench.NATIVE, "python", 2.0, 3.0, 4.0, [1000.0]),
        bench.Figures(auto, bench.NATIVE, "python", 0.1, 0.6, 1.0, [5000.0]),
    ]
    assert bench.compiled_verdicts(rows, 8) == [
        "h2load: compiled native p50: 0.610 ms (<= 0.6 ms): MISSED",
        "h2load: compiled native 8-caller throughput / --compile off's: 4.92x (>= 5x): MISSED",
        "python: compiled native p50: 0.600 ms (<= 0.6 ms): met",
        "python: compiled native 8-caller throughput / --compile off's: 5.00x (>= 5x): met",
    ]


def test_the_v2_rest_body_is_what_tritonclient_http_sends(bench: ModuleType) -> None:
    import json

    import pandas as pd

    row = pd.DataFrame({"a": [1.5], "b": [-2.0]})
    requests = bench.build_requests(row)
    length = int(requests.rest_headers["Inference-Header-Content-Length"])
    header = json.loads(requests.rest_body[:length])
    assert header["parameters"] == {"binary_data_output": True}
    assert [output["name"] for output in header["outputs"]] == ["prediction"]
    assert [output.name for output in requests.v2.outputs] == ["prediction"]
    assert [tensor["parameters"]["binary_data_size"] for tensor in header["inputs"]] == [8, 8]
    assert (
        requests.rest_body[length:]
        == requests.v2.raw_input_contents[0] + (requests.v2.raw_input_contents[1])
    )
