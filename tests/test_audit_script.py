"""scripts/audit's decisions, with a stand-in pip-audit: the real one needs PyPI's per-version
advisory API, which CI reaches and this test must not depend on (CI runs the real audit as a
step of its own). The stand-in writes the JSON report pip-audit writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run_audit(
    tmp_path: Path, dependencies: list[dict[str, Any]], exceptions: str = ""
) -> subprocess.CompletedProcess:
    exceptions_file = tmp_path / "exceptions.txt"
    exceptions_file.write_text(exceptions)
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"dependencies": dependencies, "fixes": []}))
    stand_in = tmp_path / "pip-audit"
    stand_in.write_text(
        f'#!/bin/sh\nwhile [ "$1" != "--output" ]; do shift; done\ncp {report} "$2"\n'
    )
    stand_in.chmod(0o755)
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "audit")],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "MLP_PIP_AUDIT": str(stand_in),
            "MLP_AUDIT_EXCEPTIONS": str(exceptions_file),
        },
        timeout=60,
    )


def vulnerable(name: str, vulnerability_id: str, fixes: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "version": "1.0",
        "vulns": [{"id": vulnerability_id, "fix_versions": fixes, "aliases": []}],
    }


def test_a_fixable_vulnerability_fails_and_one_without_a_fix_does_not(tmp_path: Path) -> None:
    clean = {"name": "six", "version": "1.17.0", "vulns": []}
    fixable = run_audit(tmp_path, [clean, vulnerable("requests", "GHSA-test-0001", ["9.9"])])
    assert fixable.returncode == 1
    assert "requests 1.0: GHSA-test-0001 (fixed in 9.9)" in fixable.stdout
    unfixed = run_audit(tmp_path, [clean, vulnerable("requests", "GHSA-test-0002", [])])
    assert unfixed.returncode == 0, unfixed.stdout
    assert "no fixed version yet" in unfixed.stdout


def test_a_listed_exception_passes_and_a_stale_one_is_reported(tmp_path: Path) -> None:
    exceptions = (
        "# comment\nGHSA-test-0003  needs numpy 2 (PyCaret 3.3.2 holds 1.26)\nPYSEC-x  gone\n"
    )
    result = run_audit(tmp_path, [vulnerable("numpy", "GHSA-test-0003", ["2.0"])], exceptions)
    assert result.returncode == 0, result.stdout
    assert "excepted: needs numpy 2 (PyCaret 3.3.2 holds 1.26)" in result.stdout
    assert "PYSEC-x is no longer reported; remove it" in result.stdout
    unexplained = run_audit(tmp_path, [], "GHSA-test-0004\n")
    assert unexplained.returncode != 0 and "needs a reason" in unexplained.stderr


def test_a_pin_that_could_not_be_audited_fails(tmp_path: Path) -> None:
    skipped = {"name": "six", "version": "1.17.0", "skip_reason": "Dependency not found on PyPI"}
    result = run_audit(tmp_path, [skipped])
    assert result.returncode == 1
    assert "NOT AUDITED six: Dependency not found on PyPI" in result.stdout


def test_every_exception_has_a_reason() -> None:
    for line in (REPO / "audit-exceptions.txt").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            assert len(line.split(maxsplit=1)) == 2, f"no reason given: {line}"
