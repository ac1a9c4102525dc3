"""The monitoring pages: `/monitor` (the watched models), `/monitor/NAME` (per version: traffic,
live quality beside the baseline, drift per feature, with bar plots) and `/monitor/NAME.json`.

The gateway computes nothing here: it carries no ML stack. The figures come from an
`mlp monitor exporter` (`--monitor-url`), which refreshes them on its schedule; the page is
plain HTML with inline SVG plots (no script, nothing fetched from elsewhere). Without a
configured exporter the routes answer 404 saying how to configure one.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote

import grpc
import httpx
from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from mlplatform.gateway import auth
from mlplatform.gateway.openapi import ERROR_RESPONSES
from mlplatform.gateway.responses import JsonResponse
from mlplatform.gateway.status_mapping import ApiError

router = APIRouter(tags=["monitoring"])
PROTECTED = auth.OPENAPI_SECURITY
#: The pages are HTML, their errors the gateway's one JSON shape: documented as such, since
#: FastAPI would otherwise list the errors under the route's own (HTML) media type.
HTML_ROUTE_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "description": response["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    for status, response in ERROR_RESPONSES.items()
}
HTML_ROUTE_ERRORS[404]["description"] = "NOT_FOUND: monitoring is off, or the model is not watched"
EXPORTER_TIMEOUT_S = 10.0
BAR_WIDTH = 240
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}
td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
.drifted{color:#b00020;font-weight:600}
"""


async def _exporter_json(request: Request, path: str) -> Any:
    auth.api_key_of(request)  # with MLP_API_KEYS set, the figures need a key like predictions
    base = request.app.state.settings.monitor_url.rstrip("/")
    if not base:
        raise ApiError(
            grpc.StatusCode.NOT_FOUND,
            "monitoring pages are off: start `mlp monitor exporter` and give the gateway "
            "--monitor-url http://HOST:PORT (MLP_GATEWAY_MONITOR_URL)",
        )
    try:
        async with httpx.AsyncClient(timeout=EXPORTER_TIMEOUT_S) as client:
            reply = await client.get(f"{base}{path}")
    except httpx.HTTPError:
        raise ApiError(
            grpc.StatusCode.UNAVAILABLE, f"the monitoring exporter at {base} does not answer"
        ) from None
    if reply.status_code == 404:
        raise ApiError(grpc.StatusCode.NOT_FOUND, "the monitoring exporter does not watch it")
    if reply.status_code != 200:
        raise ApiError(grpc.StatusCode.UNAVAILABLE, "the monitoring exporter failed")
    return reply.json()


def _figure(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


def _quality_table(entry: dict[str, Any]) -> str:
    baseline = entry["baseline"] or {}
    names = list(dict.fromkeys([*entry["quality"], *baseline]))
    if not names:
        return "<p>No labelled predictions yet.</p>"
    rows = "".join(
        f"<tr><th>{escape(name)}</th>"
        f"<td class='live' data-metric='{escape(name)}'>{_figure(entry['quality'].get(name))}</td>"
        f"<td class='baseline' data-metric='{escape(name)}'>{_figure(baseline.get(name))}</td>"
        "</tr>"
        for name in names
    )
    header = "<tr><th>metric</th><th>live</th><th>baseline</th></tr>"
    return f"<table class='quality'>{header}{rows}</table>"


def _quality_over_time(entry: dict[str, Any]) -> str:
    """Per day: labelled count and every metric, with the first metric as a bar (0..1 scores;
    errors such as MAE are drawn against the largest day)."""
    days = entry.get("quality_over_time") or []
    if not days:
        return ""
    names = [name for name in days[0] if name not in ("day", "labelled")]
    if not names:
        return ""
    plotted = names[0]
    largest = max(abs(float(day.get(plotted, 0.0))) for day in days) or 1.0
    scale = 1.0 if plotted in ("accuracy", "f1", "auc") else largest
    header = "".join(f"<th>{escape(name)}</th>" for name in names)
    rows = []
    for day in days:
        width = max(1, round(min(abs(float(day.get(plotted, 0.0))) / scale, 1.0) * BAR_WIDTH))
        cells = "".join(
            f"<td class='live' data-metric='{escape(name)}'>{_figure(day.get(name))}</td>"
            for name in names
        )
        rows.append(
            f"<tr class='day' data-day='{escape(day['day'])}'><th>{escape(day['day'])}</th>"
            f"<td class='labelled'>{day['labelled']}</td>{cells}"
            f"<td><svg width='{BAR_WIDTH}' height='12' role='img' aria-label='{escape(plotted)}'>"
            f"<rect width='{width}' height='12' fill='#36c'/></svg></td></tr>"
        )
    return (
        "<h3>Quality over time</h3><table class='over-time'>"
        f"<tr><th>day (UTC)</th><th>labelled</th>{header}<th>{escape(plotted)}</th></tr>"
        f"{''.join(rows)}</table>"
    )


def _drift_plot(entry: dict[str, Any]) -> str:
    drift = entry["drift"]
    if drift is None:
        return "<p>No baseline or no inputs: drift is not measured.</p>"
    features = drift["features"]
    rows = []
    for name, column in features.items():
        # Evidently's scores are p-values (K-S, chi-squared, Z: small = drifted) or distances
        # (Wasserstein, Jensen-Shannon: large = drifted); the bar shows the score as given.
        width = max(1, round(min(float(column["score"]), 1.0) * BAR_WIDTH))
        state = "drifted" if column["drifted"] else "stable"
        colour = "#b00020" if column["drifted"] else "#4a7"
        rows.append(
            f"<tr class='feature {state}' data-feature='{escape(name)}'>"
            f"<th>{escape(name)}</th><td class='state'>{state}</td>"
            f"<td class='score'>{_figure(column['score'])}</td>"
            f"<td><svg width='{BAR_WIDTH}' height='12' role='img' aria-label='score'>"
            f"<rect width='{width}' height='12' fill='{colour}'/>"
            f"</svg></td><td>{escape(column['method'])}</td></tr>"
        )
    return (
        f"<p>Drifted features: <span class='drift-share'>{drift['share']:.4f}</span></p>"
        "<table class='drift'><tr><th>feature</th><th>state</th><th>score</th><th></th>"
        f"<th>method</th></tr>{''.join(rows)}</table>"
    )


def _version_section(entry: dict[str, Any]) -> str:
    version = escape(entry["version"])
    prediction = entry.get("prediction_drift")
    prediction_text = (
        "not measured"
        if prediction is None
        else f"{'drifted' if prediction['drifted'] else 'stable'} ({escape(prediction['method'])})"
    )
    return (
        f"<section class='version' data-version='{version}'><h2>Version {version}</h2>"
        f"<p><span class='predictions'>{entry['predictions']}</span> predictions, "
        f"<span class='labelled'>{entry['labelled']}</span> labelled. "
        f"Predictions: {prediction_text}.</p>"
        f"<h3>Quality</h3>{_quality_table(entry)}{_quality_over_time(entry)}"
        f"<h3>Drift</h3>{_drift_plot(entry)}</section>"
    )


@router.get(
    "/monitor",
    summary="The models monitoring watches",
    response_class=HTMLResponse,
    openapi_extra=PROTECTED,
    responses=HTML_ROUTE_ERRORS,
)
async def monitor_index(request: Request) -> Response:
    """Links to each watched model's page."""
    listing = await _exporter_json(request, "/monitor.json")
    items = "".join(
        f"<li><a href='/monitor/{quote(name)}'>{escape(name)}</a></li>"
        for name in listing["models"]
    )
    return _page("Monitoring", f"<h1>Monitoring</h1><ul class='models'>{items}</ul>")


@router.get(
    "/monitor/{name}.json",
    summary="A model's monitoring figures (as mlp monitor --json)",
    response_class=JsonResponse,
    openapi_extra=PROTECTED,
    responses=ERROR_RESPONSES,
)
async def monitor_json(name: str, request: Request) -> Response:
    """Per version, newest first: predictions, labelled, quality, baseline, drift."""
    return JsonResponse(await _exporter_json(request, f"/monitor/{quote(name)}.json"))


@router.get(
    "/monitor/{name}",
    summary="A model's monitoring page",
    response_class=HTMLResponse,
    openapi_extra=PROTECTED,
    responses=HTML_ROUTE_ERRORS,
)
async def monitor_page(name: str, request: Request) -> Response:
    """Per version: traffic, live quality beside the baseline, drift per feature."""
    summary = await _exporter_json(request, f"/monitor/{quote(name)}.json")
    sections = "".join(_version_section(entry) for entry in summary["versions"])
    body = f"<h1>{escape(name)}</h1>{sections or '<p>No predictions in the window.</p>'}"
    return _page(f"Monitoring {name}", body)
