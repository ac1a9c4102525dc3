"""The root pyproject lists every server-side package (setuptools does not find mapped
subpackages by itself), so a non-editable install, as in the Docker image, is complete."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed() -> None:
    setuptools_config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dirs: dict[str, str] = setuptools_config["package-dir"]
    listed = set(setuptools_config["packages"])
    expected = set()
    for package, folder in package_dirs.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder)
            expected.add(".".join([package, *relative.parts]))
    assert listed == expected
