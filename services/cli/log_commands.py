"""`mlp logs [SERVICE] [-f]`: the local stack's service logs, which `mlp up` and `mlp demo`
write to DATA_DIR/logs/<service>.log instead of the terminal."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO

import typer

from mlplatform.common.settings import get_settings

#: How often --follow looks for new lines.
POLL_SECONDS = 0.25


def stack_log_dir(data_dir: Path | None) -> Path:
    """Where `mlp up --data-dir DATA_DIR` keeps the services' logs."""
    return (data_dir or get_settings().data_dir / "stack") / "logs"


class _LogFile:
    """One service's log, read from where the last read stopped."""

    def __init__(self, path: Path, prefix: str) -> None:
        self.path = path
        self.prefix = prefix
        self.position = 0
        self.partial = ""

    def last_lines(self, count: int) -> list[str]:
        data = self.path.read_bytes()
        self.position = len(data)
        *lines, self.partial = data.decode("utf-8", errors="replace").split("\n")
        return lines[-count:] if count > 0 else lines

    def new_lines(self) -> list[str]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self.position:  # the stack started again: the file began afresh
            self.position, self.partial = 0, ""
        if size == self.position:
            return []
        with self.path.open("rb") as handle:
            handle.seek(self.position)
            data = handle.read()
        self.position += len(data)
        text = self.partial + data.decode("utf-8", errors="replace")
        *lines, self.partial = text.split("\n")
        return lines


def _show(log: _LogFile, lines: list[str], out: TextIO) -> None:
    for line in lines:
        out.write(f"{log.prefix}{line}\n")
    out.flush()


def logs(
    service: str = typer.Argument(
        None, help="One service (mlflow, trainer, inferer, predictor, gateway); default: all."
    ),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    lines: int = typer.Option(50, "--lines", "-n", min=0, help="Last lines of each log; 0: all."),
    data_dir: Path | None = typer.Option(
        None, help="The stack's data folder, as given to `mlp up` (default: MLP_DATA_DIR/stack)."
    ),
) -> None:
    """Show the local stack's service logs (written by `mlp up` and `mlp demo`)."""
    log_dir = stack_log_dir(data_dir)
    available = sorted(log_dir.glob("*.log"))
    if not available:
        typer.echo(
            f"mlp logs: no service logs in {log_dir}; is the stack started (mlp up)?", err=True
        )
        raise typer.Exit(1)
    names = [path.stem for path in available]
    if service is not None and service not in names:
        typer.echo(
            f"mlp logs: no log of {service!r} in {log_dir} (there: {', '.join(names)})", err=True
        )
        raise typer.Exit(2)
    chosen = [path for path in available if service is None or path.stem == service]
    width = max(len(path.stem) for path in chosen)
    files = [_LogFile(path, "" if service else f"{path.stem:<{width}} | ") for path in chosen]
    out = typer.get_text_stream("stdout")
    for log in files:
        _show(log, log.last_lines(lines), out)
    if not follow:
        return
    try:
        while True:
            for log in files:
                _show(log, log.new_lines(), out)
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        return


def register(app: typer.Typer) -> None:
    """Adds `mlp logs` to the `mlp` app."""
    app.command("logs")(logs)
