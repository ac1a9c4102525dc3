"""Reading a training table from a local file within size limits: CSV, Parquet, or one
CSV/Parquet member of a zip.

The limits are checked before reading: the file's size; a zip member's declared unpacked
size and its ratio to its packed size (a zip bomb declares either a huge size or a
ratio no table has); a Parquet file's declared unpacked size. A zip member's declared
size can lie, so its stream is cut off at the limit as well. Messages name the file and
the limit, never the file's content: the names of a zip's members are summarised like
any other list of names.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import IO

import pandas as pd
import pyarrow.parquet as pq

from mlplatform.common.summaries import summarise_names
from mlplatform.trainer.steps.base import DataLimits, StepFailure

__all__ = ["DataLimits", "check_zip_member", "read_table"]

_TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
#: Below this unpacked size a member is no threat whatever its ratio (a small CSV of
#: repeated values packs far beyond 100:1).
_RATIO_FLOOR_BYTES = 1024**2


class _LimitedReader(io.RawIOBase):
    """A stream that fails once more than `limit` bytes came through it."""

    def __init__(self, stream: IO[bytes], limit: int, what: str) -> None:
        self._stream = stream
        self._remaining = limit
        self._limit = limit
        self._what = what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self._stream.read(min(len(buffer), self._remaining + 1))
        self._remaining -= len(chunk)
        if self._remaining < 0:
            raise StepFailure(
                f"{self._what} unpacks to more than {self._limit} bytes (MLP_MAX_DATA_BYTES)"
            )
        buffer[: len(chunk)] = chunk
        return len(chunk)


def read_table(
    path: Path, file_format: str = "", member: str = "", limits: DataLimits | None = None
) -> pd.DataFrame:
    """Reads CSV, Parquet, or one CSV/Parquet member of a zip; errors name the file."""
    limits = limits or DataLimits()
    if not path.is_file():
        raise StepFailure(f"data file not found: {path}")
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise StepFailure(
            f"{path} holds {size} bytes; the limit is {limits.max_bytes} (MLP_MAX_DATA_BYTES)"
        )
    kind = (file_format or path.suffix.lstrip(".")).lower()
    try:
        if kind == "zip":
            return _read_zip_member(path, member, limits)
        if kind in ("parquet", "pq"):
            with path.open("rb") as handle:
                return _read_parquet(handle, str(path), limits)
        if kind == "csv" or not file_format:
            return pd.read_csv(path)
    except StepFailure:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, pd.errors.ParserError) as error:
        raise StepFailure(f"cannot read {path} as {kind}: {error}") from error
    raise StepFailure(f"unknown data format '{kind}' for {path}; expected csv, parquet or zip")


def _read_parquet(handle: IO[bytes], what: str, limits: DataLimits) -> pd.DataFrame:
    """Parquet, once its footer's sizes are within the limit. Dictionary and run-length
    encodings make the stored sizes small for repetitive data, so the rows times columns
    (at eight bytes a value) bound the size in memory as well."""
    metadata = pq.ParquetFile(handle).metadata
    stored = sum(
        metadata.row_group(index).total_byte_size for index in range(metadata.num_row_groups)
    )
    unpacked = max(stored, metadata.num_rows * metadata.num_columns * 8)
    if unpacked > limits.max_bytes:
        raise StepFailure(
            f"{what} declares {metadata.num_rows} rows of {metadata.num_columns} columns, "
            f"about {unpacked} bytes unpacked; the limit is {limits.max_bytes} "
            "(MLP_MAX_DATA_BYTES)"
        )
    handle.seek(0)
    return pd.read_parquet(handle)


def _read_zip_member(path: Path, member: str, limits: DataLimits) -> pd.DataFrame:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        tables = [name for name in names if name.lower().endswith(_TABLE_SUFFIXES)]
        if member:
            if member not in names:
                held = summarise_names(tables) if tables else "no CSV or Parquet file"
                raise StepFailure(f"{path} has no member '{member}'; it holds: {held}")
            chosen = member
        elif len(tables) == 1:
            chosen = tables[0]
        else:
            listed = summarise_names(tables) if tables else "no CSV or Parquet file"
            raise StepFailure(f"{path} holds {listed}; name one with 'member'")
        info = archive.getinfo(chosen)
        what = f"{path}!{chosen}"
        check_zip_member(info, what, limits)
        with archive.open(info) as packed:
            stream = io.BufferedReader(_LimitedReader(packed, limits.max_bytes, what))
            if chosen.lower().endswith(".csv"):
                return pd.read_csv(stream)
            # Parquet needs to seek: the member is read whole, within the limit.
            return _read_parquet(io.BytesIO(stream.read()), what, limits)


def check_zip_member(info: zipfile.ZipInfo, what: str, limits: DataLimits) -> None:
    """Refuses a member whose declared size or compression ratio is beyond the limits."""
    if info.file_size > limits.max_bytes:
        raise StepFailure(
            f"{what} unpacks to {info.file_size} bytes; the limit is {limits.max_bytes} "
            "(MLP_MAX_DATA_BYTES)"
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > _RATIO_FLOOR_BYTES and ratio > limits.max_zip_ratio:
        raise StepFailure(
            f"{what} unpacks {ratio:.0f} times its packed size; the limit is "
            f"{limits.max_zip_ratio:g} (MLP_MAX_ZIP_RATIO): refused as a likely zip bomb"
        )
