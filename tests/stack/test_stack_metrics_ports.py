"""What `mlp up` starts for metrics, read off its service specs (no process runs here): a
port for every service from one block, and the monitoring exporter unless left out."""

from __future__ import annotations

from pathlib import Path

from mlplatform.stack.local_stack import StackConfig, service_specs


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_each_service_gets_its_own_metrics_port_and_the_exporter_runs(tmp_path: Path) -> None:
    specs = {spec.name: list(spec.argv) for spec in service_specs(StackConfig(tmp_path))}
    ports = {name: option(argv, "--metrics-port") for name, argv in specs.items()}
    assert ports == {
        "mlflow": None,
        "predictor": "9095",
        "gateway": "9096",
        "exporter": "9097",
        "trainer": "9098",
        "inferer": "9099",
    }
    assert specs["exporter"][3:5] == ["monitor", "exporter"]
    assert option(specs["gateway"], "--monitor-url") == "http://127.0.0.1:9097"


def test_several_workers_get_consecutive_ports_and_the_exporter_can_be_left_out(
    tmp_path: Path,
) -> None:
    config = StackConfig(tmp_path, metrics_port=19000, trainers=2, inferers=2, with_exporter=False)
    specs = {spec.name: list(spec.argv) for spec in service_specs(config)}
    assert "exporter" not in specs
    assert option(specs["gateway"], "--monitor-url") is None
    ports = [option(argv, "--metrics-port") for name, argv in specs.items() if name != "mlflow"]
    assert len(set(ports)) == len(ports) == 6
    assert option(specs["trainer2"], "--metrics-port") == "19004"
    assert option(specs["inferer2"], "--metrics-port") == "19006"
    assert config.metrics_url("inferer1") == "http://127.0.0.1:19005/metrics"
