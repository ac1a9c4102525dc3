"""Child processes with a readiness check, a log file each (optionally echoed, prefixed with
the service name) and a clean stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

#: A readiness check: True once the process serves. It also sees the process's log so far.
ReadinessCheck = Callable[["ManagedProcess"], bool]


class ProcessFailed(RuntimeError):
    """A child exited or did not become ready in time; carries the end of its log."""


@dataclass
class ServiceSpec:
    """How to run one service of the stack."""

    name: str
    argv: Sequence[str]
    ready: ReadinessCheck
    environment: dict[str, str] = field(default_factory=dict)
    #: Seconds to wait for readiness.
    start_timeout: float = 120.0
    #: What the user is told once it is ready (where it listens).
    banner: str = ""


class ManagedProcess:
    """One running child: its output goes line by line to `log_path` (when given) and to
    `sink` (when given), there prefixed with its name."""

    def __init__(
        self,
        spec: ServiceSpec,
        sink: TextIO | None = None,
        log_width: int = 10,
        log_path: Path | None = None,
    ) -> None:
        self.spec = spec
        self.sink = sink
        self.log_path = log_path
        self._log_file = log_path.open("a", encoding="utf-8") if log_path is not None else None
        self.prefix = f"{spec.name:<{log_width}}| "
        self.lines: list[str] = []
        self._lines_lock = threading.Lock()
        self.process = subprocess.Popen(
            list(spec.argv),
            env={**os.environ, **spec.environment, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            start_new_session=True,  # our Ctrl-C is not theirs: we stop them in order
        )
        self._reader = threading.Thread(target=self._stream, name=f"log-{spec.name}", daemon=True)
        self._reader.start()

    def _stream(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lines_lock:
                self.lines.append(line)
                if len(self.lines) > 2000:
                    del self.lines[:1000]
            if self._log_file is not None:
                self._log_file.write(line)
                self._log_file.flush()
            if self.sink is not None:
                self.sink.write(self.prefix + line)
                self.sink.flush()
        if self._log_file is not None:
            self._log_file.close()

    def log_contains(self, text: str) -> bool:
        with self._lines_lock:
            return any(text in line for line in self.lines)

    def tail(self, count: int = 30) -> str:
        with self._lines_lock:
            return "".join(self.lines[-count:])

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self) -> None:
        """Returns once the readiness check passes; ProcessFailed on exit or time-out."""
        deadline = time.monotonic() + self.spec.start_timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise ProcessFailed(
                    f"{self.spec.name} exited with code {self.process.returncode}:\n{self.tail()}"
                )
            try:
                if self.spec.ready(self):
                    return
            except Exception:  # not answering yet
                pass
            time.sleep(0.25)
        raise ProcessFailed(
            f"{self.spec.name} was not ready within {self.spec.start_timeout:.0f}s:\n{self.tail()}"
        )

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit code."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        return self.process.returncode
