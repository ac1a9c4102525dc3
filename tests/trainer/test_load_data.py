"""Reading training data: CSV, CSV inside a zip (the seed's creditcardfraud.zip), Parquet."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from mlplatform.trainer.steps import StepFailure
from mlplatform.trainer.steps.base import DataLimits
from mlplatform.trainer.steps.data_files import _LimitedReader
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


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path: Path) -> None:
    FRAME.to_csv(tmp_path / "d.csv", index=False)
    size = (tmp_path / "d.csv").stat().st_size
    with pytest.raises(StepFailure, match=rf"holds {size} bytes; the limit is 10 \(MLP_MAX"):
        read_table(tmp_path / "d.csv", limits=DataLimits(max_bytes=10))
    assert len(read_table(tmp_path / "d.csv", limits=DataLimits(max_bytes=size))) == 3


def test_a_zip_member_is_refused_by_its_declared_size_and_its_ratio(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    # 3 MiB of zeros packs to a few kilobytes: the shape of a zip bomb, small enough to test.
    zeros = b"a\n" + b"0\n" * (3 * 1024**2 // 2)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.csv", zeros)
    packed = path.stat().st_size
    with pytest.raises(StepFailure, match=r"bomb\.zip!zeros\.csv unpacks to \d+ bytes; the limit"):
        read_table(path, limits=DataLimits(max_bytes=packed * 100))
    with pytest.raises(StepFailure, match=r"unpacks \d+ times its packed size; the limit is 100 "):
        read_table(path, limits=DataLimits(max_bytes=10 * 1024**2, max_zip_ratio=100))
    assert len(read_table(path, limits=DataLimits(max_zip_ratio=10_000))) == len(zeros) // 2 - 1


def test_a_zip_member_that_unpacks_beyond_its_declared_size_is_cut_off() -> None:
    rows = b"a,b\n" + b"1,2\n" * 1000
    stream = io.BufferedReader(_LimitedReader(io.BytesIO(rows), 64, "a.zip!m.csv"))
    with pytest.raises(StepFailure, match=r"a\.zip!m\.csv unpacks to more than 64 bytes"):
        pd.read_csv(stream)
    assert io.BufferedReader(_LimitedReader(io.BytesIO(b"x" * 64), 64, "m")).read() == b"x" * 64


def test_a_parquet_file_is_refused_by_its_declared_unpacked_size(tmp_path: Path) -> None:
    path = tmp_path / "wide.parquet"
    pd.DataFrame({"a": [0.0] * 100_000}).to_parquet(path, compression="zstd")
    with pytest.raises(StepFailure, match=r"100000 rows of 1 columns, about 800000 bytes unpacked"):
        read_table(path, limits=DataLimits(max_bytes=path.stat().st_size + 1))


def test_zip_member_lists_are_summarised(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(30):
            archive.writestr(f"{'x' * 80}{index}.csv", "a\n1\n")
    with pytest.raises(StepFailure) as failure:
        read_table(path)
    message = str(failure.value)
    assert "x" * 64 not in message and message.count("x" * 63 + "…") == 20
    assert "and 10 more; name one with 'member'" in message
