"""Data roots: which paths and URIs a pipeline may read, decided without reading anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplatform.client.data_roots import DataAccessRefused, DataRoots
from mlplatform.client.pipelines import PipelineError, check_pipeline, parse_pipeline
from mlplatform.common.settings import Settings


def _pipeline(path: str) -> dict:
    return {
        "pipeline": [{"MLSteps": [{"load_data_from_file": {"path": path}}]}],
        "experiment_config": {
            "experiment_name": "e",
            "problem_type": "classification",
            "target": "Class",
        },
    }


def test_paths_are_resolved_before_they_are_compared(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "secret.env"
    outside.write_text("DB_PASSWORD=hunter2\n")
    (root / "link.csv").symlink_to(outside)
    roots = DataRoots.of([root])
    assert roots.check_path(str(root / "sub" / "x.csv")) == root / "sub" / "x.csv"
    assert roots.check_path("sub/../x.csv", base=root) == root / "x.csv"
    for refused in (str(outside), f"{root}/../secret.env", str(root / "link.csv"), "/etc/passwd"):
        with pytest.raises(DataAccessRefused, match="is outside the data roots; allowed: "):
            roots.check_path(refused)
    # A sibling whose name starts like the root is not inside it.
    with pytest.raises(DataAccessRefused):
        roots.check_path(f"{root}-other/x.csv")


def test_refusal_reads_nothing_and_says_the_same_for_absent_files(tmp_path: Path) -> None:
    roots = DataRoots.of([tmp_path / "data"])
    unreadable = tmp_path / "unreadable.csv"
    unreadable.write_text("x")
    unreadable.chmod(0)
    messages = []
    for path in (unreadable, tmp_path / "absent.csv"):
        with pytest.raises(DataAccessRefused) as refusal:
            roots.check_path(str(path))
        messages.append(str(refusal.value).replace(path.name, "NAME"))
    assert messages[0] == messages[1]
    assert str(tmp_path / "data") in messages[0]


def test_a_root_given_through_a_symlink_still_matches(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    assert DataRoots.of([tmp_path / "alias"]).check_path(str(real / "d.csv")) == real / "d.csv"


def test_uri_prefixes_and_everything(tmp_path: Path) -> None:
    roots = DataRoots.parse(f"{tmp_path}, kaggle:mlg-ulb/")
    assert roots.uri_prefixes == ("kaggle:mlg-ulb/",)
    roots.check_uri("kaggle:mlg-ulb/creditcardfraud/creditcard.csv")
    with pytest.raises(DataAccessRefused, match=r"allowed: .*, kaggle:mlg-ulb/"):
        roots.check_uri("kaggle:someone/else/file.csv")
    everything = DataRoots.parse("*")
    everything.check_path("/etc/passwd")
    everything.check_uri("kaggle:a/b/c")
    assert everything.describe() == "* (everything)"


def test_default_roots_are_the_data_folder_the_examples_and_kaggle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLP_DATA_ROOTS", raising=False)
    monkeypatch.setenv("MLP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    roots = Settings().resolved_data_roots
    assert roots.directories == (tmp_path / "data", tmp_path / "examples")
    assert roots.uri_prefixes == ("kaggle:",)
    assert not roots.allow_all
    roots.check_path("examples/data/credit_fraud_sample.csv")
    with pytest.raises(DataAccessRefused):
        roots.check_path(str(Path.home() / ".ssh" / "id_rsa"))
    monkeypatch.setenv("MLP_DATA_ROOTS", "*")
    assert Settings().resolved_data_roots.allow_all


def test_validation_names_the_field_and_the_roots(tmp_path: Path) -> None:
    definition = parse_pipeline(_pipeline("/etc/passwd"))
    with pytest.raises(PipelineError) as error:
        check_pipeline(definition, data_roots=DataRoots.of([tmp_path]))
    (problem,) = error.value.errors
    assert problem.path == "pipeline[0].MLSteps[0].load_data_from_file.path"
    assert str(tmp_path) in problem.message
    check_pipeline(definition)  # without roots, nothing is decided here


def test_submit_checks_against_mlp_data_roots_before_publishing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplatform.client.submit import submit_pipeline

    monkeypatch.setenv("MLP_DATA_ROOTS", str(tmp_path))
    definition = parse_pipeline(_pipeline("/etc/passwd"))
    # The broker URL points nowhere: the refusal comes before any connection.
    with pytest.raises(PipelineError, match="outside the data roots"):
        submit_pipeline(definition, broker_url="amqp://guest:guest@127.0.0.1:1/%2F")
