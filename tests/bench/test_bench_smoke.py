"""Every bench script runs, as a user runs it (`python bench/NAME.py`), at tiny sizes, and prints
its table: benchmarks that are not run rot. The figures themselves are not checked (speed is
measured in bench/, never in tests); a script whose exit status reports a missed target (1) still
passes here when it printed its table.

Real parts, as the benches use them: `mlp predictor` and `mlp gateway` processes, RabbitMQ at
MLP_BROKER_URL, Spark (local[1]), a temporary MLflow store each.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

#: script -> (tiny-size arguments, a line of its table, exit statuses that mean it ran)
SMOKE_RUNS: dict[str, tuple[list[str], str, tuple[int, ...]]] = {
    "bench_predictor.py": (
        ["--smoke"],
        r"--compile auto +V2 REST +python .*\n(.*\n)*.*V2 gRPC p50 - native p50: .*: (met|MISSED)"
        r"(.*\n)*.*compiled native p50: [\d.]+ ms \(<= 0\.6 ms\): (met|MISSED)",
        (0,),
    ),
    "bench_gateway.py": (["--smoke"], r"REST /predict p50 - gRPC p50: .*: (met|MISSED)", (0,)),
    "bench_codec.py": (["--rows", "200", "--repeats", "1"], r"float +decode +\d", (0, 1)),
    "bench_store.py": (
        ["--rows", "200", "--batch-size", "50"],
        r"count model\+version +\d+ +\d",
        (0, 1),
    ),
    "bench_monitor.py": (
        ["--rows", "2000", "--labelled", "200", "--features", "4"],
        r"summary of 2,000 predictions",
        (0, 1),
    ),
    "bench_inferer.py": (
        "--rows 2000 --rows-per-message 500 --chunk-rows 500 --skip-pycaret --repeat 1".split(),
        r"scikit-learn RF, 100 trees \((onnxruntime|sklearn)\) +[\d,]+ +[\d,]+ +\d+%",
        (0,),
    ),
    "bench_inferer_stages.py": (
        "--rows 2000 --rows-per-message 500 --chunk-rows 500".split(),
        r"one inferer can reach \d+% of the in-process rate",
        (0,),
    ),
    "bench_batch.py": (
        "--rows 2000 --workers 1 --files 1 --arrow-rows 1000 --warm-runs 1 --model-threads 1 "
        "--skip-queue".split(),
        r"\| in-process \| LoadedModel\.predict",
        (0,),
    ),
    "bench_trainer.py": (
        # Part 1 (the example pipeline, direct and through the platform) trains for minutes.
        ["--rows", "300", "--latency-jobs", "1", "--latency-only"],
        r"queue-to-start on an idle worker \(1 jobs\): p50 \d+ ms",
        (0, 1),
    ),
}


def test_every_bench_script_has_a_smoke_run() -> None:
    scripts = {path.name for path in BENCH.glob("bench_*.py")}
    assert scripts == set(SMOKE_RUNS)


@pytest.mark.parametrize("script", sorted(SMOKE_RUNS))
def test_bench_script_prints_its_table(script: str, tmp_path: Path) -> None:
    arguments, table_line, statuses = SMOKE_RUNS[script]
    # Each run gets its own store; the default one may belong to another release.
    environment = {**os.environ, "MLP_STORE_URI": f"sqlite:///{tmp_path / 'store.db'}"}
    completed = subprocess.run(
        [sys.executable, str(BENCH / script), *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=environment,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode in statuses, output
    assert "Traceback" not in output, output
    assert re.search(table_line, completed.stdout), output
