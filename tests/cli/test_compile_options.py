"""A wrong `--compile` value is refused before anything starts, naming the option and the
values it takes."""

from __future__ import annotations

from typer.testing import CliRunner

from mlplatform.cli.main import app


def test_inferer_refuses_an_unknown_compile_mode() -> None:
    result = CliRunner().invoke(app, ["inferer", "--compile", "bogus"])
    assert result.exit_code == 2
    assert "--compile: expected one of ['auto', 'onnx', 'off']; got 'bogus'" in result.output


def test_predictor_refuses_an_unknown_compile_mode() -> None:
    result = CliRunner().invoke(app, ["predictor", "--compile", "bogus"])
    assert result.exit_code == 2
    assert "compile" in result.output and "'auto', 'onnx' or 'off'" in result.output
