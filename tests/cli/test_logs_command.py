"""`mlp logs` on a stack's log folder: the last lines of each service, prefixed; one service
as written; `-f` prints lines as they are appended (a real subprocess); a service with no log
is an error naming the ones there."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

from typer.testing import CliRunner

from mlplatform.cli.main import app
from tests.trainer.workers import wait_until

runner = CliRunner()


def _stack_dir(tmp_path: Path) -> Path:
    logs = tmp_path / "stack" / "logs"
    logs.mkdir(parents=True)
    (logs / "trainer.log").write_text("t1\nt2\nt3\n")
    (logs / "predictor.log").write_text("p1\n")
    return tmp_path / "stack"


def test_every_service_prefixed_or_one_as_written(tmp_path: Path) -> None:
    data_dir = str(_stack_dir(tmp_path))
    every = runner.invoke(app, ["logs", "--data-dir", data_dir, "-n", "2"])
    assert every.exit_code == 0, every.output
    assert every.output.splitlines() == ["predictor | p1", "trainer   | t2", "trainer   | t3"]
    one = runner.invoke(app, ["logs", "trainer", "--data-dir", data_dir, "-n", "0"])
    assert one.output.splitlines() == ["t1", "t2", "t3"]
    missing = runner.invoke(app, ["logs", "gateway", "--data-dir", data_dir])
    assert missing.exit_code == 2
    assert "no log of 'gateway'" in missing.output
    assert "predictor, trainer" in missing.output
    nothing = runner.invoke(app, ["logs", "--data-dir", str(tmp_path / "elsewhere")])
    assert nothing.exit_code == 1
    assert "is the stack started (mlp up)?" in nothing.output


def test_follow_prints_appended_lines(tmp_path: Path) -> None:
    data_dir = _stack_dir(tmp_path)
    mlp = shutil.which("mlp")
    assert mlp, "the mlp console script is not installed"
    follower = subprocess.Popen(
        [mlp, "logs", "trainer", "-f", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ,
    )
    seen: list[str] = []
    reader = threading.Thread(
        target=lambda: seen.extend(iter(follower.stdout.readline, "")),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    try:
        wait_until(lambda: "t3\n" in seen, 60, "the last lines")
        with (data_dir / "logs" / "trainer.log").open("a") as log:
            log.write("t4\nt5 ")
            log.flush()
            log.write("continued\n")
        wait_until(lambda: "t5 continued\n" in seen, 30, "the appended lines")
        assert seen == ["t1\n", "t2\n", "t3\n", "t4\n", "t5 continued\n"]
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(30)
        reader.join(10)
