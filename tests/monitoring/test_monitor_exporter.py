"""`mlp monitor exporter`: the monitoring figures as Prometheus gauges, refreshed on a schedule,
scraped from a real exporter process; and the example alert rules name only its gauges."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import yaml
from monitoring_model import MODEL, MonitoredModel, draw_rows, running_exporter
from predictor_harness import wait_until
from prometheus_client.parser import text_string_to_metric_families

from mlplatform.client.frames import dataframe_to_frame
from mlplatform.common.monitoring.exporter import MonitorGauges
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "monitoring-alerts.yml"


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return {}
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_exporter_serves_each_versions_figures_and_refreshes_them(
    monitored: MonitoredModel, tmp_path: Path
) -> None:
    stub = predictor_pb2_grpc.PredictorStub(monitored.predictor.channel)
    stub.Predict(
        predictor_pb2.PredictRequest(inputs=dataframe_to_frame(draw_rows(20, 5)), request_id="exp"),
        timeout=30,
    )
    wait_until(
        lambda: monitored.store.count_predictions(request_id="exp") == 20,
        what="the predictions to be logged",
    )
    version_labels = (("model", MODEL), ("version", "1"))
    with running_exporter(monitored, tmp_path) as (base_url, _log):
        url = f"{base_url}/metrics"
        served = monitored.store.count_predictions(model_name=MODEL, model_version="1")
        samples = wait_until(
            lambda: (
                (found := scrape(url)).get(("mlp_monitor_predictions", version_labels)) == served
                and found
            ),
            timeout=90,
            what="the exporter's first figures",
        )
        share = samples[("mlp_monitor_drift_share", version_labels)]
        assert 0.0 <= share <= 1.0
        assert samples[("mlp_monitor_labelled_predictions", version_labels)] == (
            monitored.store.count_labelled(MODEL, "1")
        )
        baseline_metrics = {
            dict(labels)["metric"]
            for (name, labels) in samples
            if name == "mlp_monitor_baseline_quality"
        }
        assert baseline_metrics == {"accuracy", "f1", "auc"}
        first_refresh = samples[("mlp_monitor_last_refresh_timestamp_seconds", ())]
        wait_until(
            lambda: (
                scrape(url).get(("mlp_monitor_last_refresh_timestamp_seconds", ()), 0)
                > first_refresh
            ),
            timeout=30,
            what="a second refresh",
        )


def test_example_alert_rules_use_only_the_exporters_gauges() -> None:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    exported = {metric.name for metric in MonitorGauges().registry.collect()}
    for rule in rules:
        named = set(re.findall(r"\bmlp_monitor_\w+", rule["expr"]))
        assert named and named <= exported, (rule["alert"], named - exported)
