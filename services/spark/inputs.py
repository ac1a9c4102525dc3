"""Where a Spark batch reads from and whether its columns fit the model, checked before Spark
starts where the input is on this machine.

A local file, directory or glob is looked at here (its format, its column names) so a typo or
a missing column costs a second, not a Spark session. Remote paths (`s3a://`, `hdfs://`,
`gs://`, ...) go to Spark as they are; their columns are checked against the schema Spark
reads, still before any row is scored.
"""

from __future__ import annotations

import csv
import glob
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from mlplatform.common.input_schema import ColumnKind, ColumnSpec
from mlplatform.spark.errors import SparkBatchError

FORMATS = ("parquet", "csv")
_SUFFIX_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
_GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class BatchInput:
    """An input Spark can read: `path` as Spark takes it, its `format`, and, for a local
    input, its column names (None for a remote one, whose columns Spark reports)."""

    path: str
    format: str
    columns: tuple[str, ...] | None = None

    @property
    def is_local(self) -> bool:
        return self.columns is not None


def is_remote(path: str) -> bool:
    """A URI with a scheme other than file:// (and not a Windows drive letter)."""
    scheme = urlparse(path).scheme
    return len(scheme) > 1 and scheme != "file"


def resolve_input(path: str, format_name: str | None = None) -> BatchInput:
    """The input at `path`; SparkBatchError('--input', ...) when it cannot be read."""
    if format_name is not None and format_name not in FORMATS:
        raise SparkBatchError(
            "--format", f"expected one of {', '.join(FORMATS)}; got {format_name!r}"
        )
    if is_remote(path):
        return BatchInput(path, format_name or _format_of_name(path) or "parquet")
    local = path.removeprefix("file://")
    files = _local_files(local)
    formats = {_format_of_name(str(file)) for file in files} - {None}
    if format_name is None:
        if len(formats) != 1:
            found = ", ".join(sorted(str(f) for f in formats)) or "no .parquet or .csv file"
            raise SparkBatchError(
                "--input", f"{path}: expected .parquet or .csv files (or --format); found {found}"
            )
        format_name = formats.pop()  # type: ignore[assignment]
    readable = [file for file in files if _format_of_name(str(file)) in (format_name, None)]
    columns = _columns(readable[0], format_name)
    return BatchInput(
        str(Path(local).resolve()) if not _is_glob(local) else local, format_name, columns
    )


def missing_columns(model_schema: tuple[ColumnSpec, ...], columns: tuple[str, ...]) -> list[str]:
    """The model's input columns the input lacks (optional ones too: a PyCaret pipeline raises
    KeyError on any training column left out)."""
    present = set(columns)
    return [spec.name for spec in model_schema if spec.name not in present]


def check_columns(
    model_schema: tuple[ColumnSpec, ...], columns: tuple[str, ...], id_column: str | None, path: str
) -> None:
    """SparkBatchError naming every missing model column, or a missing --id-column."""
    missing = missing_columns(model_schema, columns)
    if missing:
        raise SparkBatchError(
            "--input",
            f"{path} lacks the model's input columns: {', '.join(missing)} "
            f"(the model needs {', '.join(spec.name for spec in model_schema)})",
        )
    if id_column is not None and id_column not in columns:
        raise SparkBatchError("--id-column", f"{path} has no column {id_column!r}")


def check_kinds(model_schema: tuple[ColumnSpec, ...], kinds: dict[str, ColumnKind | None]) -> None:
    """SparkBatchError naming each column whose type the model cannot take.

    `kinds` maps each input column to its kind (None for types no Frame carries). Integers may
    feed a double column (Spark casts them); anything else must match.
    """
    wrong = []
    for spec in model_schema:
        kind = kinds.get(spec.name)
        if kind == spec.kind or (spec.kind is ColumnKind.DOUBLE and kind is ColumnKind.INT64):
            continue
        shown = kind.value if kind is not None else "an unsupported type"
        wrong.append(f"{spec.name} (expected {spec.kind.value}, got {shown})")
    if wrong:
        raise SparkBatchError("--input", "columns of the wrong type: " + "; ".join(wrong))


def _is_glob(path: str) -> bool:
    return any(character in _GLOB_CHARACTERS for character in path)


def _format_of_name(name: str) -> str | None:
    return _SUFFIX_FORMATS.get(Path(urlparse(name).path).suffix.lower())


def _local_files(path: str) -> list[Path]:
    """The data files a local path names; hidden and `_` files (Spark's markers) are skipped."""
    if _is_glob(path):
        matched = sorted(Path(found) for found in glob.glob(path))
        if not matched:
            raise SparkBatchError("--input", f"{path}: no file matches")
        candidates = [file for found in matched for file in _files_under(found)]
    else:
        target = Path(path)
        if not target.exists():
            raise SparkBatchError("--input", f"{path}: no such file or directory")
        candidates = _files_under(target)
    if not candidates:
        raise SparkBatchError("--input", f"{path}: holds no data files")
    return candidates


def _files_under(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(
        file for file in path.rglob("*") if file.is_file() and not file.name.startswith((".", "_"))
    )


def _columns(file: Path, format_name: str) -> tuple[str, ...]:
    """The column names of one input file (every file of a Spark input shares them)."""
    try:
        if format_name == "parquet":
            import pyarrow.parquet as pq

            return tuple(pq.read_schema(file).names)
        with file.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        raise SparkBatchError(
            "--input", f"{file}: not readable as {format_name}: {reason}"
        ) from None
    if not header:
        raise SparkBatchError("--input", f"{file}: the CSV file has no header line")
    return tuple(header)
