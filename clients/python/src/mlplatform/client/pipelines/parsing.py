"""Reading pipeline files (JSON or YAML) into `PipelineDefinition` messages.

Protobuf's own JSON parser stops at the first problem and names message types, not
the user's keys; this walks the document against the message descriptors first, so
every unknown key, unknown step and wrongly typed value is reported with its path.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from mlplatform.client.pipelines.errors import FieldError, PipelineError, join_path
from mlplatform.client.pipelines.validation import check_pipeline
from mlplatform.v1 import pipeline_pb2

_STEP_MESSAGE = pipeline_pb2.MLStep.DESCRIPTOR.full_name
_STRUCT_MESSAGES = {"google.protobuf.Struct", "google.protobuf.Value"}
_INTEGER_TYPES = {
    FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64,
}  # fmt: skip
_FLOAT_TYPES = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT}
_PLOT_SELECTION = pipeline_pb2.PlotSelection.DESCRIPTOR.full_name


def load_pipeline_text(
    text: str, source: str = "<pipeline>", *, validate: bool = True
) -> pipeline_pb2.PipelineDefinition:
    """Parses JSON (or, for `.yaml`/`.yml` sources, YAML) text into a checked definition."""
    if source.endswith((".yaml", ".yml")):
        document = _read_yaml(text, source)
    else:
        document = _read_json(text, source)
    return parse_pipeline(document, source=source, validate=validate)


def load_pipeline_file(
    path: str | Path, *, validate: bool = True
) -> pipeline_pb2.PipelineDefinition:
    """Reads, parses and validates a pipeline file; raises PipelineError naming what is wrong."""
    file_path = Path(path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except OSError as error:
        raise PipelineError(
            [FieldError("", f"cannot read file: {error.strerror}")], str(path)
        ) from None
    except UnicodeDecodeError as error:
        raise PipelineError([FieldError("", f"not UTF-8 text: {error}")], str(path)) from None
    return load_pipeline_text(text, source=str(path), validate=validate)


def parse_pipeline(
    document: Any, source: str | None = None, *, validate: bool = True
) -> pipeline_pb2.PipelineDefinition:
    """Checks a decoded JSON/YAML document against the contract, then builds the message.

    With `validate`, also runs the semantic checks (`validate_pipeline`).
    """
    errors: list[FieldError] = []
    normalized = _check_message(document, pipeline_pb2.PipelineDefinition.DESCRIPTOR, "", errors)
    if errors:
        raise PipelineError(errors, source)
    definition = pipeline_pb2.PipelineDefinition()
    try:
        json_format.ParseDict(normalized, definition)
    except json_format.ParseError as error:  # the walk should have caught it; never hide it
        raise PipelineError([FieldError("", str(error))], source) from None
    if validate:
        check_pipeline(definition, source)
    return definition


def _read_json(text: str, source: str) -> Any:
    def reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise ValueError(f"duplicate key '{key}'")
            seen[key] = value
        return seen

    try:
        return json.loads(text, object_pairs_hook=reject_duplicates)
    except json.JSONDecodeError as error:
        location = f"line {error.lineno} column {error.colno}"
        raise PipelineError(
            [FieldError("", f"malformed JSON at {location}: {error.msg}")], source
        ) from None
    except ValueError as error:
        raise PipelineError([FieldError("", f"malformed JSON: {error}")], source) from None


def _read_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        location = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise PipelineError(
            [FieldError("", f"malformed YAML{location}: {problem}")], source
        ) from None


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def _check_message(value: Any, descriptor: Descriptor, path: str, errors: list[FieldError]) -> Any:
    """Returns the value with enum names normalized; appends every problem to `errors`."""
    if not isinstance(value, dict):
        where = path or "the document"
        errors.append(FieldError(path, f"expected an object for {where}, got {_type_name(value)}"))
        return value
    fields = {field.json_name: field for field in descriptor.fields}
    fields.update({field.name: field for field in descriptor.fields})
    is_step = descriptor.full_name == _STEP_MESSAGE
    normalized: dict[str, Any] = {}
    for key, item in value.items():
        child_path = join_path(path, str(key))
        field = fields.get(key)
        if field is None:
            known = ", ".join(_written_key(field) for field in descriptor.fields)
            kind = "step" if is_step else "key"
            expected = "known steps" if is_step else "expected one of"
            errors.append(FieldError(child_path, f"unknown {kind} '{key}'; {expected}: {known}"))
            continue
        if item is None:  # JSON null: the field is left unset
            continue
        normalized[key] = _check_field(item, field, child_path, errors)
    if is_step and len(value) != 1 and all(key in fields for key in value):
        known = ", ".join(_written_key(field) for field in descriptor.fields)
        got = ", ".join(value) or "nothing"
        errors.append(FieldError(path, f"a step holds exactly one of {known}; got {got}"))
    return normalized


def _written_key(field: FieldDescriptor) -> str:
    """The key users write: the field name, or its `json_name` where one was chosen."""
    head, *rest = field.name.split("_")
    default_json_name = head + "".join(part.capitalize() for part in rest)
    return field.name if field.json_name == default_json_name else field.json_name


def _check_field(value: Any, field: FieldDescriptor, path: str, errors: list[FieldError]) -> Any:
    if field.is_repeated:
        if not isinstance(value, list):
            errors.append(FieldError(path, f"expected a list, got {_type_name(value)}"))
            return value
        return [_check_single(item, field, f"{path}[{i}]", errors) for i, item in enumerate(value)]
    return _check_single(value, field, path, errors)


def _check_single(value: Any, field: FieldDescriptor, path: str, errors: list[FieldError]) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name in _STRUCT_MESSAGES:
            if field.message_type.full_name == "google.protobuf.Struct" and not isinstance(
                value, dict
            ):
                errors.append(FieldError(path, f"expected an object, got {_type_name(value)}"))
            return value
        if field.message_type.full_name == _PLOT_SELECTION:
            if not isinstance(value, bool | list | dict):
                expected = "true, false or a list of plot names"
                errors.append(FieldError(path, f"expected {expected}, got {_type_name(value)}"))
                return value
            value = _plot_selection_shorthand(value)
        return _check_message(value, field.message_type, path, errors)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return _check_enum(value, field.enum_type, path, errors)
    expected = _scalar_problem(value, field.type)
    if expected:
        errors.append(FieldError(path, f"expected {expected}, got {_type_name(value)} {value!r}"))
    return value


def _plot_selection_shorthand(value: Any) -> Any:
    """`"log_plots": true` and `"log_plots": ["auc", ...]` as the PlotSelection they mean."""
    if isinstance(value, bool):
        return {"enabled": value}
    if isinstance(value, list):
        return {"enabled": True, "plots": value}
    return value


def _scalar_problem(value: Any, field_type: int) -> str | None:
    """What the field expects, when `value` does not fit it; None when it fits."""
    if field_type == FieldDescriptor.TYPE_STRING:
        return None if isinstance(value, str) else "a string"
    if field_type == FieldDescriptor.TYPE_BOOL:
        return None if isinstance(value, bool) else "true or false"
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if field_type in _INTEGER_TYPES:
        whole = is_number and math.isfinite(value) and float(value).is_integer()
        return None if whole else "a whole number"
    if field_type in _FLOAT_TYPES:
        return None if is_number and math.isfinite(value) else "a finite number"
    return None


def _check_enum(value: Any, enum: EnumDescriptor, path: str, errors: list[FieldError]) -> Any:
    """Accepts the full value name or its short form (`classification`), any case."""
    short_names = _short_enum_names(enum)
    if isinstance(value, str):
        wanted = value.strip().upper()
        for full_name, short_name in short_names.items():
            if wanted in (full_name, short_name.upper()):
                return full_name
    choices = ", ".join(short_names.values())
    message = f"{value!r} is not a valid {enum.name}; expected one of: {choices}"
    errors.append(FieldError(path, message))
    return value


def _short_enum_names(enum: EnumDescriptor) -> dict[str, str]:
    """`PROBLEM_TYPE_CLASSIFICATION` -> `classification`, leaving out the zero value."""
    prefix = "".join(f"_{c}" if c.isupper() else c.upper() for c in enum.name).lstrip("_") + "_"
    return {
        value.name: value.name.removeprefix(prefix).lower()
        for value in enum.values
        if value.number != 0
    }
