"""The configuration table (docs/configuration.md, the README's short table) says what the code
says: every setting of every service, its flag, environment variable and default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplatform.cli import config_table
from mlplatform.common.settings import Settings
from mlplatform.gateway.settings import GatewaySettings
from mlplatform.predictor.settings import PredictorSettings

REPO = Path(__file__).resolve().parents[2]


def test_the_committed_table_is_what_the_code_says() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlplatform.cli.config_table", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_field_of_every_settings_class_has_a_row() -> None:
    found = config_table.settings_classes()
    assert {Settings, PredictorSettings, GatewaySettings} <= set(found)
    text = config_table.document()
    for cls in found:
        for name, field in cls.model_fields.items():
            assert f"`{config_table._env_name(cls, name, field)}`" in text, (cls, name)


def test_a_flag_is_joined_to_the_setting_it_sets() -> None:
    rows = config_table.service_rows(("predictor",), config_table.settings_classes())
    by_env = {row.env: row for row in rows}
    assert by_env["`MLP_PREDICTOR_RELOAD_INTERVAL_S`"].flags == "`--reload-interval`"
    assert by_env["`MLP_PREDICTOR_PORT`"].default == "`50051`"
    assert by_env["`MLP_PREDICTOR_BATCHING`"].flags == "`--batching` / `--no-batching`"


def test_a_changed_default_makes_the_check_fail(monkeypatch) -> None:
    class ChangedSettings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="MLP_PREDICTOR_")
        port: int = Field(default=50052, description="gRPC port.")

    monkeypatch.setattr(config_table, "settings_classes", lambda: [Settings, ChangedSettings])
    assert "| `--port` | `MLP_PREDICTOR_PORT` | `50052` | gRPC port. |" in config_table.document()
    assert config_table.main(["--check"]) == 1


def test_variables_read_straight_from_the_environment_are_listed() -> None:
    rows = {row.env: row for row in config_table.environment_constants()}
    assert rows["`MLP_BROKER_TLS_CA`"].flags == "`mlplatform.client.messaging`"
    assert "amqps://" in rows["`MLP_BROKER_TLS_KEY`"].description
    assert "| `MLP_BROKER_TLS_CERT` | `mlplatform.client.messaging` |" in config_table.document()
