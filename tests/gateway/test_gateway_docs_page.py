"""`/docs` in a real headless Chromium that can reach nothing but the gateway: Swagger UI's
files come from the gateway itself, and the page lists the gateway's operations."""

from __future__ import annotations

from pathlib import Path

from gateway_harness import free_port, running_gateway
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.browser import OFFLINE, headless_chromium


def test_docs_render_the_operations_offline(tmp_path: Path) -> None:
    # No predictor is needed to read the docs: the gateway's address points at a closed port.
    with (
        running_gateway(f"127.0.0.1:{free_port()}", tmp_path) as gateway,
        headless_chromium(OFFLINE) as browser,
    ):
        browser.get(f"{gateway.url}/docs")
        WebDriverWait(browser, 30).until(
            lambda page: page.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
        )
        paths = {
            element.text.replace("\u200b", "")
            for element in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
        }
        assert {"/predict", "/invocations"} <= paths, paths
        scripts = [
            element.get_attribute("src")
            for element in browser.find_elements(By.TAG_NAME, "script")
            if element.get_attribute("src")
        ]
        assert scripts and all(src.startswith(gateway.url) for src in scripts), scripts
        assert gateway.client.get("/docs/assets/swagger-ui.css").status_code == 200


def test_the_docs_assets_need_no_key(tmp_path: Path) -> None:
    with running_gateway(
        f"127.0.0.1:{free_port()}", tmp_path, environment={"MLP_API_KEYS": "secret"}
    ) as gateway:
        assert gateway.client.get("/docs").status_code == 200
        assert gateway.client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
        assert gateway.client.get("/redoc").status_code == 200
        assert gateway.client.post("/predict", json={"records": []}).status_code == 401
