"""The README's examples run as written: every block marked `<!-- runnable -->` runs against a
local stack (the code `mlp up` runs), the shell blocks in one shell, in order, as a reader
pastes them, the Python blocks with this interpreter.

Only the ports differ: the stack listens on free ports, so the README's `:5000`, `:50051` and
`:8000` are rewritten to them, and `$HOME` is a temporary folder whose `.mlplatform/stack` is
the stack's data folder (where `mlp up` keeps it). After the block that trains, the test waits
for the predictor to serve the new version, as the README says it does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mlplatform.client.messaging import DEFAULT_BROKER_URL
from mlplatform.stack.local_stack import StackConfig, local_stack
from tests.support.ports import stack_ports
from tests.support.queues import BROKER_URL

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
RUNNABLE = re.compile(r"<!-- runnable -->\s*\n```(bash|python)\n(.*?)```", re.DOTALL)


def runnable_blocks(markdown: str) -> list[tuple[str, str]]:
    """(language, code) of every block marked runnable, in document order."""
    return [(match.group(1), match.group(2)) for match in RUNNABLE.finditer(markdown)]


def test_readme_marks_the_quick_start_runnable() -> None:
    blocks = runnable_blocks((REPO / "README.md").read_text())
    code = "\n".join(code for _, code in blocks)
    assert {language for language, _ in blocks} == {"bash", "python"}
    for command in ("mlp submit", "mlp predict", "curl -s localhost:8000/predict", "/invocations"):
        assert command in code, f"the README's runnable blocks do not run {command!r}"
    assert "..." not in code, "a runnable block holds an elision"


def test_the_readme_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the README's paths are relative to a checkout
    mlflow_port, predictor_port, metrics_port, gateway_port = stack_ports()
    ports = {"5000": mlflow_port, "50051": predictor_port, "9095": metrics_port}
    ports["8000"] = gateway_port
    home = tmp_path / "home"
    suffix = uuid.uuid4().hex[:8]
    queues = {
        "MLP_PIPELINES_QUEUE": f"readme.{suffix}.p",
        "MLP_BATCHES_QUEUE": f"readme.{suffix}.b",
    }
    config = StackConfig(
        data_dir=home / ".mlplatform" / "stack",
        broker_url=BROKER_URL or DEFAULT_BROKER_URL,
        mlflow_port=mlflow_port,
        predictor_port=predictor_port,
        metrics_port=metrics_port,
        gateway_port=gateway_port,
        environment=queues,
    )

    def on_free_ports(code: str) -> str:
        return re.sub(
            r"\b(127\.0\.0\.1|localhost):(5000|50051|9095|8000)\b",
            lambda match: f"{match.group(1)}:{ports[match.group(2)]}",
            code,
        )

    waits_for_the_model = (
        f"{sys.executable} -c 'from mlplatform.stack import scenario; "
        f'scenario.wait_until_serving("{config.predictor_address}", timeout=180)\'\n'
    )
    shell: list[str] = ["set -euo pipefail"]
    python_blocks: list[str] = []
    for language, code in runnable_blocks((REPO / "README.md").read_text()):
        if language == "bash":
            shell.append(on_free_ports(code))
            if "mlp submit" in code:
                shell.append(waits_for_the_model)
        else:
            python_blocks.append(on_free_ports(code))
    environment = {
        **os.environ,
        **queues,
        "HOME": str(home),
        "MLP_BROKER_URL": config.broker_url,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    environment.pop("MLP_DATA_DIR", None)  # a new user's data folder is the one under $HOME
    with (tmp_path / "stack.log").open("w") as log, local_stack(config, sink=log):
        ran = subprocess.run(
            ["bash", "-c", "\n".join(shell)],
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
        )
        output = ran.stdout + ran.stderr
        assert ran.returncode == 0, output
        assert "registered credit_fraud v1 @production" in output
        assert "credit_fraud version 1" in output  # mlp predict's table
        assert output.count('"predictions":[') == 2, output  # /predict and /invocations
        for code in python_blocks:
            answered = subprocess.run(
                [sys.executable, "-c", code],
                env=environment,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert answered.returncode == 0, answered.stdout + answered.stderr
            assert answered.stdout.startswith("1 "), answered.stdout  # the model version
