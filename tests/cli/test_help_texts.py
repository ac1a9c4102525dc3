"""`mlp --version`, shell completion, and every command's help: it renders, says something,
and every environment variable it names is one the code reads (the predictor's and the
gateway's options each name theirs, as their settings classes spell it)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import typer.main
from pydantic_settings import BaseSettings
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.common.settings import Settings
from mlplatform.gateway.settings import GatewaySettings
from mlplatform.predictor.settings import PredictorSettings

REPO = Path(__file__).resolve().parents[2]
ENV_NAME = re.compile(r"\b(?:MLP|MLFLOW|OTEL)_[A-Z0-9_]*[A-Z0-9]\b")
#: Wide enough that rich does not wrap a variable's name in two.
runner = CliRunner(env={"COLUMNS": "250"})


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if hasattr(group, "commands"):  # a group (typer brings its own click classes)
        for name, command in group.commands.items():
            yield from _commands(command, (*path, name))


ROOT = typer.main.get_command(app)
COMMANDS = list(_commands(ROOT))


def _settings_env_names(settings_class: type[BaseSettings]) -> set[str]:
    prefix = settings_class.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in settings_class.model_fields}


def _names_the_code_reads() -> set[str]:
    """Every variable name written in the code, and every settings field's variable."""
    names = set()
    for folder in ("services", "gateway", "clients/python/src/mlplatform/client"):
        for path in (REPO / folder).rglob("*.py"):
            names |= set(ENV_NAME.findall(path.read_text()))
    for settings_class in (Settings, PredictorSettings, GatewaySettings):
        names |= _settings_env_names(settings_class)
    return names


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"mlp (mlplatform) {metadata.version('mlplatform')}"


def test_shell_completion_is_offered() -> None:
    result = runner.invoke(app, ["--help"])
    assert "--install-completion" in result.output
    assert "--show-completion" in result.output


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(path) or "mlp" for path in COMMANDS])
def test_every_help_renders_and_names_only_real_variables(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    command = ROOT
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    assert (command.help or command.short_help or "").strip(), f"mlp {' '.join(path)}: no help"
    assert "<NAME>" not in result.output, "a placeholder instead of the variable's real name"
    unknown = set(ENV_NAME.findall(result.output)) - _names_the_code_reads()
    assert not unknown, f"mlp {' '.join(path)} --help names variables nothing reads: {unknown}"


@pytest.mark.parametrize(
    ("command", "settings_class"), [("predictor", PredictorSettings), ("gateway", GatewaySettings)]
)
def test_service_options_name_their_settings_variable(
    command: str, settings_class: type[BaseSettings]
) -> None:
    real = _settings_env_names(settings_class)
    options = [
        param for param in ROOT.commands[command].params if param.param_type_name == "option"
    ]
    shared = {"--log-level", "--log-format", "--access-log", "--help"}
    for option in options:
        if shared & set(option.opts + option.secondary_opts):
            continue
        assert option.envvar in real, f"mlp {command} {option.opts[0]}: env var {option.envvar}"
        assert option.show_envvar
    help_text = runner.invoke(app, [command, "--help"]).output
    assert "MLP_PREDICTOR_RELOAD_INTERVAL_S" in help_text or command != "predictor"
