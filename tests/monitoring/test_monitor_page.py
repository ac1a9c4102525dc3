"""The gateway's monitoring pages, opened in a real headless Chromium (selenium): the figures
read off the page are those `mlp monitor --json` prints for the same log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from monitoring_model import (
    MODEL,
    MonitoredModel,
    draw_rows,
    running_exporter,
    running_gateway,
    true_labels,
)
from predictor_harness import wait_until
from selenium import webdriver
from selenium.webdriver.common.by import By
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.client.frames import dataframe_to_frame
from mlplatform.v1 import predictor_pb2, predictor_pb2_grpc
from tests.support.browser import headless_chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with headless_chromium() as driver:
        yield driver


def test_the_page_shows_what_mlp_monitor_prints(
    monitored: MonitoredModel, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    rows = draw_rows(120, seed=31)
    rows.loc[60:, "f1"] += 2.5  # half of them shifted on one column
    stub = predictor_pb2_grpc.PredictorStub(monitored.predictor.channel)
    stub.Predict(
        predictor_pb2.PredictRequest(inputs=dataframe_to_frame(rows), request_id="page"),
        timeout=30,
    )
    wait_until(
        lambda: monitored.store.count_predictions(request_id="page") == 120,
        what="the predictions to be logged",
    )
    labels = true_labels(rows, seed=32)
    reply = monitored.gateway.client.post(
        "/outcomes",
        content=pd.DataFrame({"request_id": "page", "row": range(120), "label": labels}).to_csv(
            index=False
        ),
        headers={"Content-Type": "text/csv"},
    )
    assert reply.status_code == 200, reply.text
    expected = json.loads(
        CliRunner()
        .invoke(
            app,
            [
                *("monitor", MODEL, "--json", "--store", monitored.store_uri),
                *("--tracking-uri", monitored.tracking_uri),
            ],
        )
        .stdout
    )
    [entry] = expected["versions"]

    with (
        running_exporter(monitored, tmp_path) as (exporter_url, _log),
        running_gateway(
            monitored.predictor.address, tmp_path, "--monitor-url", exporter_url
        ) as gateway,
    ):
        wait_until(
            lambda: (
                (reply := gateway.client.get(f"/monitor/{MODEL}.json")).status_code == 200
                and reply.json()["versions"][0]["labelled"] == entry["labelled"]
            ),
            timeout=90,
            what="the exporter's figures behind the gateway",
        )
        browser.get(f"{gateway.url}/monitor")
        link = browser.find_element(By.LINK_TEXT, MODEL)
        link.click()
        wait_until(lambda: browser.title == f"Monitoring {MODEL}", what="the model's page")
        section = browser.find_element(By.CSS_SELECTOR, "section.version[data-version='1']")
        read = lambda selector: section.find_element(By.CSS_SELECTOR, selector).text  # noqa: E731
        assert int(read(".predictions")) == entry["predictions"]
        assert int(read(".labelled")) == entry["labelled"]
        for metric, value in entry["quality"].items():
            assert float(read(f"td.live[data-metric='{metric}']")) == pytest.approx(value, abs=1e-4)
            baseline = entry["baseline"][metric]
            shown = float(read(f"td.baseline[data-metric='{metric}']"))
            assert shown == pytest.approx(baseline, abs=1e-4)
        assert float(read(".drift-share")) == pytest.approx(entry["drift"]["share"], abs=1e-4)
        drifted_on_page = {
            row.get_attribute("data-feature")
            for row in section.find_elements(By.CSS_SELECTOR, "tr.feature.drifted")
        }
        expected_drifted = {
            name for name, column in entry["drift"]["features"].items() if column["drifted"]
        }
        assert drifted_on_page == expected_drifted and "f1" in drifted_on_page
        days = section.find_elements(By.CSS_SELECTOR, "table.over-time tr.day")
        assert [row.get_attribute("data-day") for row in days] == [
            day["day"] for day in entry["quality_over_time"]
        ]
        for row, day in zip(days, entry["quality_over_time"], strict=True):
            assert int(row.find_element(By.CSS_SELECTOR, ".labelled").text) == day["labelled"]
            shown = row.find_element(By.CSS_SELECTOR, "td.live[data-metric='accuracy']").text
            assert float(shown) == pytest.approx(day["accuracy"], abs=1e-4)
        assert sum(day["labelled"] for day in entry["quality_over_time"]) == entry["labelled"]
        bars = section.find_elements(By.CSS_SELECTOR, "tr.feature svg rect")
        assert len(bars) == len(entry["drift"]["features"])
        assert gateway.client.get(f"/monitor/{MODEL}.json").json() == expected


def test_without_an_exporter_the_pages_say_how_to_turn_them_on(
    monitored: MonitoredModel,
) -> None:
    reply = monitored.gateway.client.get("/monitor")
    assert reply.status_code == 404
    assert "--monitor-url" in reply.json()["message"]
