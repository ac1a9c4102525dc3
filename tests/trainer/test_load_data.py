"""Reading training data: CSV, CSV inside a zip (the seed's creditcardfraud.zip), Parquet."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pytest

from mlplatform.trainer.steps import StepFailure
from mlplatform.trainer.steps.load_data import data_digest, read_table

FRAME = pd.DataFrame({"a": [1.5, 2.5, None], "b": ["x", "y", "z"], "Class": [0, 1, 0]})


def test_csv_and_parquet(tmp_path: Path) -> None:
    FRAME.to_csv(tmp_path / "d.csv", index=False)
    FRAME.to_parquet(tmp_path / "d.parquet")
    pd.testing.assert_frame_equal(read_table(tmp_path / "d.csv"), FRAME)
    pd.testing.assert_frame_equal(read_table(tmp_path / "d.parquet"), FRAME)


def test_single_csv_inside_a_zip(tmp_path: Path) -> None:
    FRAME.to_csv(tmp_path / "creditcard.csv", index=False)
    with zipfile.ZipFile(tmp_path / "creditcardfraud.zip", "w") as archive:
        archive.write(tmp_path / "creditcard.csv", arcname="creditcard.csv")
    pd.testing.assert_frame_equal(read_table(tmp_path / "creditcardfraud.zip"), FRAME)


def test_zip_with_several_tables_needs_a_member(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("train.csv", FRAME.to_csv(index=False))
        archive.writestr("test.csv", FRAME.head(1).to_csv(index=False))
    with pytest.raises(StepFailure, match=r"holds train\.csv, test\.csv; name one with 'member'"):
        read_table(path)
    assert len(read_table(path, member="test.csv")) == 1
    with pytest.raises(StepFailure, match=r"has no member 'nope\.csv'"):
        read_table(path, member="nope.csv")


def test_missing_and_unreadable_files_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(StepFailure, match=r"data file not found: .*absent\.csv"):
        read_table(tmp_path / "absent.csv")
    broken = tmp_path / "broken.parquet"
    broken.write_text("not parquet")
    with pytest.raises(StepFailure, match=r"cannot read .*broken\.parquet as parquet"):
        read_table(broken)


def test_digest_changes_with_content_not_with_reading() -> None:
    assert data_digest(FRAME) == data_digest(FRAME.copy())
    changed = FRAME.copy()
    changed.loc[0, "a"] = 9.0
    assert data_digest(changed) != data_digest(FRAME)
