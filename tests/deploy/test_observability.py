"""deploy/prometheus and deploy/grafana hold together with compose.yml and with the code.

No Prometheus, promtool or Grafana runs here, so the files are checked the way they would
break: every scrape target is a compose service on the metrics port compose gives it; every
alert rule and dashboard expression names metrics the services really export; Grafana's
provisioning points at the folders and the data source compose mounts and runs; and
docs/metrics.md describes every metric.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "mlplatform.json"
#: What a metric family exposes, by its type (prometheus_client's naming).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}
#: PromQL metrics that come from Prometheus itself, not from a service.
BUILT_IN = {"up"}
METRIC = re.compile(r"\bmlp_[a-z0-9_]+\b")


def registries() -> list[CollectorRegistry]:
    from mlplatform.common.monitoring.exporter import MonitorGauges
    from mlplatform.gateway.metrics import GatewayMetrics
    from mlplatform.inferer.metrics import InfererMetrics
    from mlplatform.predictor.metrics import PredictorMetrics
    from mlplatform.trainer.metrics import TrainerMetrics

    return [
        PredictorMetrics().registry,
        GatewayMetrics().registry,
        TrainerMetrics().registry,
        InfererMetrics().registry,
        MonitorGauges().registry,
    ]


@pytest.fixture(scope="module")
def families() -> dict[str, str]:
    """Every metric family the services register: name -> type."""
    found: dict[str, str] = {}
    for registry in registries():
        for family in registry.collect():
            assert family.name.startswith("mlp_"), f"{family.name}: every metric is mlp_..."
            found[family.name] = family.type
    return found


@pytest.fixture(scope="module")
def sample_names(families: dict[str, str]) -> set[str]:
    return {name + suffix for name, kind in families.items() for suffix in SUFFIXES[kind]}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "compose.yml").read_text())


@pytest.fixture(scope="module")
def prometheus_config() -> dict[str, Any]:
    return yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())


def metrics_port_in_compose(service: dict[str, Any]) -> int | None:
    """The metrics port compose gives a service: an MLP_*_METRICS_PORT or --metrics-port."""
    for name, value in service.get("environment", {}).items():
        if name.endswith("_METRICS_PORT"):
            return int(value)
    for argument in service.get("command", []):
        if str(argument).startswith("--metrics-port="):
            return int(str(argument).split("=", 1)[1])
    return None


def scrape_targets(config: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(job, host, port) of every static and DNS-discovered target."""
    targets = []
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets.append((job["job_name"], host, int(port)))
        for discovered in job.get("dns_sd_configs", []):
            assert discovered["type"] == "A", "A records carry no port: the config must give it"
            for name in discovered["names"]:
                targets.append((job["job_name"], name, int(discovered["port"])))
    return targets


def test_every_scrape_target_is_a_compose_service_on_its_metrics_port(
    compose: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    services = compose["services"]
    targets = scrape_targets(prometheus_config)
    for job, host, port in targets:
        assert host in services, f"job {job} scrapes {host}, which compose does not run"
        assert metrics_port_in_compose(services[host]) == port, (
            f"job {job} scrapes {host}:{port}; compose gives it "
            f"{metrics_port_in_compose(services[host])}"
        )
    scraped = {host for _job, host, _port in targets}
    exporting = {name for name, service in services.items() if metrics_port_in_compose(service)}
    assert scraped == exporting, f"not scraped: {exporting - scraped}"
    assert {"predictor", "gateway", "trainer", "inferer", "monitor-exporter"} <= scraped


def test_compose_runs_prometheus_and_grafana_with_this_folder(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    grafana = compose["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/mlplatform.yml").read_text())
    [dashboards] = provider["providers"]
    assert mounts["./deploy/grafana/dashboards"] == dashboards["options"]["path"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards['options']['path']}/{DASHBOARD.name}"
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    [source] = sources["datasources"]
    assert source["url"] == "http://prometheus:9090"
    assert "9090:9090" in compose["services"]["prometheus"]["ports"]


def alert_expressions() -> dict[str, str]:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    expressions = {}
    for rule_file in config["rule_files"]:
        rules = yaml.safe_load((PROMETHEUS / rule_file).read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule
                expressions[f"{rule_file}: {rule['alert']}"] = rule["expr"]
    return expressions


def dashboard_expressions() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = {}
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    source_uid = sources["datasources"][0]["uid"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == source_uid, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} shows nothing"
        for target in panel["targets"]:
            expressions[f"{panel['title']} ({target['refId']})"] = target["expr"]
    return expressions


@pytest.mark.parametrize("source", ["alert rules", "dashboard"])
def test_every_expression_names_metrics_the_services_export(
    source: str, sample_names: set[str]
) -> None:
    expressions = alert_expressions() if source == "alert rules" else dashboard_expressions()
    assert expressions
    for where, expression in expressions.items():
        named = set(METRIC.findall(expression))
        assert named or BUILT_IN & set(re.findall(r"\w+", expression)), f"{where}: names no metric"
        unknown = named - sample_names
        assert not unknown, f"{where}: {sorted(unknown)} are not exported by any service"


def test_the_dashboard_covers_every_service(sample_names: set[str]) -> None:
    shown = " ".join(dashboard_expressions().values())
    for prefix in (
        "mlp_predictor_request_latency",
        "mlp_gateway_requests_total",
        "mlp_trainer_pipelines_total",
        "mlp_inferer_rows_total",
        "mlp_inferer_part_lag",
        "mlp_dead_letters_total",
        "mlp_monitor_drift_share",
        "mlp_monitor_quality",
    ):
        assert prefix in shown, f"the dashboard shows nothing of {prefix}"


def test_docs_describe_every_metric(families: dict[str, str]) -> None:
    documented = (REPO / "docs" / "metrics.md").read_text()
    exposed = {name + ("_total" if kind == "counter" else "") for name, kind in families.items()}
    missing = sorted(name for name in exposed if f"`{name}`" not in documented)
    assert not missing, f"docs/metrics.md does not describe {missing}"
