"""Prometheus gauges of `mlp monitor`'s figures, refreshed on a schedule, so alert rules can
fire on a model version's live quality or drift (see deploy/prometheus/monitoring-alerts.yml).
The same figures are served as JSON (`/monitor.json`, `/monitor/NAME.json`, the shape of
`mlp monitor --json`) for the gateway's monitoring pages.

Each refresh recomputes every watched model's summary (the same function `mlp monitor` runs)
and replaces the gauges' children, so a version that stops serving drops out instead of
keeping its last figures. A refresh that fails is logged and counted; the gauges keep the last
good figures until the next one succeeds.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import unquote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, make_wsgi_app

from mlplatform.common.monitoring.summary import monitor_summary
from mlplatform.common.store import Store

logger = logging.getLogger(__name__)

VERSION_LABELS = ("model", "version")


class MonitorGauges:
    """The monitoring gauges, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.predictions = Gauge(
            "mlp_monitor_predictions",
            "Predictions a model version served in the monitoring window.",
            VERSION_LABELS,
            registry=self.registry,
        )
        self.labelled = Gauge(
            "mlp_monitor_labelled_predictions",
            "Of those, how many have an outcome (true label or value).",
            VERSION_LABELS,
            registry=self.registry,
        )
        self.quality = Gauge(
            "mlp_monitor_quality",
            "Live quality on labelled predictions (accuracy, f1, auc; mae, rmse, r2).",
            (*VERSION_LABELS, "metric"),
            registry=self.registry,
        )
        self.baseline_quality = Gauge(
            "mlp_monitor_baseline_quality",
            "The same metric on the training hold-out, from the version's baseline.",
            (*VERSION_LABELS, "metric"),
            registry=self.registry,
        )
        self.drift_share = Gauge(
            "mlp_monitor_drift_share",
            "Share of features whose live distribution drifted from the baseline (0..1).",
            VERSION_LABELS,
            registry=self.registry,
        )
        self.feature_drifted = Gauge(
            "mlp_monitor_feature_drifted",
            "1 when this feature drifted from the baseline, else 0.",
            (*VERSION_LABELS, "feature"),
            registry=self.registry,
        )
        self.prediction_drifted = Gauge(
            "mlp_monitor_prediction_drifted",
            "1 when the predictions' distribution drifted from the hold-out's, else 0.",
            VERSION_LABELS,
            registry=self.registry,
        )
        self.refreshed = Gauge(
            "mlp_monitor_last_refresh_timestamp_seconds",
            "When the figures were last computed (Unix time).",
            registry=self.registry,
        )
        self.refresh_failures = Counter(
            "mlp_monitor_refresh_failures",
            "Refreshes that failed (store or registry unreachable...).",
            registry=self.registry,
        )
        self._per_version = (
            self.predictions,
            self.labelled,
            self.quality,
            self.baseline_quality,
            self.drift_share,
            self.feature_drifted,
            self.prediction_drifted,
        )

    def show(self, summaries: Sequence[dict[str, Any]]) -> None:
        """Replace every per-version figure with those of `summaries`."""
        for gauge in self._per_version:
            gauge.clear()
        for summary in summaries:
            for entry in summary["versions"]:
                labels = (summary["model"], entry["version"])
                self.predictions.labels(*labels).set(entry["predictions"])
                self.labelled.labels(*labels).set(entry["labelled"])
                for metric, value in entry["quality"].items():
                    self.quality.labels(*labels, metric).set(value)
                for metric, value in (entry["baseline"] or {}).items():
                    self.baseline_quality.labels(*labels, metric).set(value)
                if entry["drift"] is not None:
                    self.drift_share.labels(*labels).set(entry["drift"]["share"])
                    for feature, column in entry["drift"]["features"].items():
                        self.feature_drifted.labels(*labels, feature).set(int(column["drifted"]))
                if entry["prediction_drift"] is not None:
                    drifted = int(entry["prediction_drift"]["drifted"])
                    self.prediction_drifted.labels(*labels).set(drifted)
        self.refreshed.set_to_current_time()


def watched_models(client: Any, models: Sequence[str]) -> list[str]:
    """`models`, or every registered model when none is named."""
    if models:
        return list(models)
    return sorted(model.name for model in client.search_registered_models())


class MonitorExporter:
    """Refreshes MonitorGauges every `interval_s` on a thread; serves them over HTTP."""

    def __init__(
        self,
        store: Store,
        client: Any,
        models: Sequence[str],
        window: timedelta,
        interval_s: float,
    ) -> None:
        self.store = store
        self.client = client
        self.models = list(models)
        self.window = window
        self.interval_s = interval_s
        self.gauges = MonitorGauges()
        #: The last summaries computed, by model name (what the JSON endpoints serve).
        self.summaries: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()

    def refresh(self) -> None:
        since = datetime.now(UTC) - self.window
        summaries = [
            monitor_summary(self.store, self.client, name, since=since)[0]
            for name in watched_models(self.client, self.models)
        ]
        self.gauges.show(summaries)
        self.summaries = {summary["model"]: summary for summary in summaries}

    def run(self) -> None:
        """Refresh until `stop()`; the first refresh happens at once."""
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:
                self.gauges.refresh_failures.inc()
                logger.exception("refreshing the monitoring figures failed")
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()

    def wsgi_app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        """/metrics (Prometheus), /monitor.json and /monitor/NAME.json."""
        path = environ.get("PATH_INFO", "")
        if path == "/monitor.json":
            return _json(start_response, "200 OK", {"models": sorted(self.summaries)})
        if path.startswith("/monitor/") and path.endswith(".json"):
            name = unquote(path.removeprefix("/monitor/").removesuffix(".json"))
            summary = self.summaries.get(name)
            if summary is None:
                return _json(start_response, "404 Not Found", {"message": f"{name!r} not watched"})
            return _json(start_response, "200 OK", summary)
        return self._metrics_app(environ, start_response)

    def serve(self, host: str, port: int) -> int:
        """Serve the endpoints on a background thread; returns the bound port."""
        self._metrics_app = make_wsgi_app(self.gauges.registry)
        server = make_server(host, port, self.wsgi_app, _ThreadingServer, _QuietHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return int(server.server_address[1])


def _json(start_response: Any, status: str, document: Any) -> list[bytes]:
    body = json.dumps(document).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """One thread per scrape, so a slow client does not hold up the next."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """No access-log line per scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        pass
