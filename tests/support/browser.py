"""A real headless Chromium for page tests (selenium), installed by scripts/ensure_chromium."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

BROWSERS = ("chromium", "google-chrome", "chromium-browser")
#: Every host name but the loopback address fails to resolve: a page that needs the internet
#: (a CDN) shows it, on a machine that has the internet as on one that has none.
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


def installed(names: tuple[str, ...]) -> str:
    """The first of `names` on PATH (scripts/ensure_chromium installs one)."""
    found = next((path for name in names if (path := shutil.which(name))), None)
    assert found, f"none of {names} is installed: run scripts/ensure_chromium"
    return found


@contextmanager
def headless_chromium(*arguments: str) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = installed(BROWSERS)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", *arguments):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(installed(("chromedriver",))))
    try:
        yield driver
    finally:
        driver.quit()
