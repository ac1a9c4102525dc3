"""The configuration table: every setting of every service, its flag, environment variable and
default, generated from the code so it cannot drift from it.

    python -m mlplatform.cli.config_table           rewrite docs/configuration.md and the
                                                    README's short table
    python -m mlplatform.cli.config_table --check   exit 1 when either differs from the code

Two sources, both read from the code as it is: the pydantic-settings classes (every
`BaseSettings` subclass under services/, gateway/ and the client package, found by reading the
sources, so a class added later is picked up) and the options of the service commands (`mlp
predictor`, `mlp trainer`, ...), read from the typer app. An option and a setting are one row
when the option's environment variable is the setting's, or when the option is named after the
setting (`--reload-interval` sets `reload_interval_s`). Variables read straight from the
environment are found as module constants holding their names.

It stays one module past 300 lines: the three sources and how they join are read together
whenever a row of the table looks wrong.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

REPO = Path(__file__).resolve().parents[2]
DOCUMENT = REPO / "docs" / "configuration.md"
README = REPO / "README.md"
README_START = "<!-- config-table:start (scripts/gen_config_table writes this table) -->"
README_END = "<!-- config-table:end -->"

#: The commands that run a service, in the order the document lists them.
SERVICE_COMMANDS = (
    ("predictor",),
    ("gateway",),
    ("trainer",),
    ("inferer",),
    ("monitor", "exporter"),
    ("up",),
)
#: Where settings classes live: source folder -> the package it installs as.
SOURCE_PACKAGES = {
    REPO / "services": "mlplatform",
    REPO / "gateway": "mlplatform.gateway",
    REPO / "clients" / "python" / "src" / "mlplatform": "mlplatform",
}
#: Option suffixes a setting's name carries and its flag leaves out (`--reload-interval`).
UNIT_SUFFIXES = ("_s",)

HEADER = """\
# Configuration

Every setting of every service: its command-line flag, its environment variable and its
default. Environment variables carry one prefix (`MLP_`); `MLFLOW_TRACKING_URI` keeps its
standard name. A flag wins over its variable; an empty default means the setting is off (or,
where the text says so, derived from another setting). `mlp COMMAND --help` shows the same.

This file is generated from the settings classes and the commands' options:
`scripts/gen_config_table` rewrites it, and a test fails when it and the code disagree.
"""


@dataclass(frozen=True)
class SettingRow:
    flags: str
    env: str
    default: str
    description: str


def _module_name(path: Path) -> str:
    for folder, package in SOURCE_PACKAGES.items():
        if path.is_relative_to(folder):
            parts = path.relative_to(folder).with_suffix("").parts
            return ".".join((package, *parts))
    raise ValueError(f"{path} is in no known source folder")


def settings_classes() -> list[type[BaseSettings]]:
    """Every BaseSettings subclass in the sources, read without importing modules that have
    none (the ML stack stays unloaded)."""
    found: list[type[BaseSettings]] = []
    for path in _python_files():
        if "BaseSettings" not in path.read_text(encoding="utf-8"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [
            node.name
            for node in tree.body
            if isinstance(node, ast.ClassDef)
            and any(ast.unparse(base).endswith("BaseSettings") for base in node.bases)
        ]
        if names:
            module = importlib.import_module(_module_name(path))
            found.extend(getattr(module, name) for name in names)
    return found


#: What an environment variable's name looks like (a module constant holding one is a setting).
ENV_NAME = re.compile(r"^MLP_[A-Z0-9_]*[A-Z0-9]$")


def _python_files() -> list[Path]:
    return [path for folder in SOURCE_PACKAGES for path in sorted(folder.rglob("*.py"))]


def environment_constants() -> list[SettingRow]:
    """Variables read straight from the environment: module constants holding a variable's name
    (`BROKER_TLS_CA_ENV = "MLP_BROKER_TLS_CA"`), described by the `#:` comment above them (or
    above the run of constants they belong to)."""
    rows: dict[str, SettingRow] = {}
    for path in _python_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.parse("\n".join(lines)).body:
            if not (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
                and ENV_NAME.match(node.value.value)
            ):
                continue
            comment: list[str] = []
            index = node.lineno - 2
            while index >= 0 and not comment:
                while index >= 0 and lines[index].startswith("#:"):
                    comment.insert(0, lines[index].removeprefix("#:").strip())
                    index -= 1
                if comment or not re.match(r"^[A-Z_]+ = ", lines[index]):
                    break
                index -= 1
            where = f"`{_module_name(path)}`"
            rows.setdefault(node.value.value, SettingRow(where, "", "", " ".join(comment)))
    return [SettingRow(row.flags, f"`{env}`", "", row.description) for env, row in rows.items()]


def _env_name(cls: type[BaseSettings], name: str, field: FieldInfo) -> str:
    alias = field.validation_alias
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"{cls.model_config.get('env_prefix', '')}{name}".upper()


def _format_default(value: Any) -> str:
    if value is None or value in ("", [], ()):
        return ""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if hasattr(value, "value") and not isinstance(value, int | float | str):  # an enum member
        value = value.value
    text = str(value).replace(str(Path.home()), "~")
    return f"`{text}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _command(path: tuple[str, ...]) -> Any:
    """The click command of `mlp PATH...` (typer's own copy of click: read by attribute)."""
    import typer.main

    from mlplatform.cli.main import app

    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


def _options(command: Any) -> list[Any]:
    return [
        param
        for param in command.params
        if param.param_type_name == "option" and not param.hidden and param.name != "help"
    ]


def _flags(option: Any) -> str:
    return " / ".join(f"`{flag}`" for flag in (*option.opts, *option.secondary_opts))


def _envvar(option: Any) -> str:
    if not option.envvar:
        return ""
    if isinstance(option.envvar, str):
        return option.envvar
    return ", ".join(option.envvar)


def _matches(option: Any, env: str, field_name: str) -> bool:
    if option.envvar:
        return _envvar(option) == env
    return option.name == field_name or any(
        option.name + suffix == field_name for suffix in UNIT_SUFFIXES
    )


def _settings_prefix(cls: type[BaseSettings]) -> str:
    return str(cls.model_config.get("env_prefix", "")).upper()


def _command_prefix(path: tuple[str, ...]) -> str:
    return "MLP_" + "_".join(path).upper() + "_"


def service_rows(path: tuple[str, ...], classes: list[type[BaseSettings]]) -> list[SettingRow]:
    """The rows of one service command: its settings classes' fields joined to its options,
    then the options no setting backs."""
    options = _options(_command(path))
    used: set[str] = set()
    rows: list[SettingRow] = []
    for cls in classes:
        if _settings_prefix(cls) != _command_prefix(path):
            continue
        for name, field in cls.model_fields.items():
            env = _env_name(cls, name, field)
            option = next((o for o in options if _matches(o, env, name)), None)
            if option is not None:
                used.add(option.name or "")
            rows.append(
                SettingRow(
                    _flags(option) if option is not None else "",
                    f"`{env}`",
                    _format_default(None if field.is_required() else field.default),
                    field.description or (option.help if option is not None else "") or "",
                )
            )
    for option in options:
        if option.name in used:
            continue
        env = _envvar(option)
        rows.append(
            SettingRow(
                _flags(option),
                f"`{env}`" if env else "",
                _format_default(None if option.multiple and not option.default else option.default),
                option.help or "",
            )
        )
    return rows


def shared_rows(classes: list[type[BaseSettings]]) -> list[SettingRow]:
    """Settings every service reads (classes whose prefix names no service command)."""
    command_prefixes = {_command_prefix(path) for path in SERVICE_COMMANDS}
    rows: list[SettingRow] = []
    for cls in classes:
        if _settings_prefix(cls) in command_prefixes:
            continue
        for name, field in cls.model_fields.items():
            rows.append(
                SettingRow(
                    "",
                    f"`{_env_name(cls, name, field)}`",
                    _format_default(None if field.is_required() else field.default),
                    field.description or "",
                )
            )
    return rows


def _table(rows: list[SettingRow], with_flags: bool = True) -> str:
    if with_flags:
        lines = ["| flag | environment variable | default | what |", "|---|---|---|---|"]
        lines += [
            f"| {_cell(r.flags)} | {_cell(r.env)} | {_cell(r.default)} | {_cell(r.description)} |"
            for r in rows
        ]
    else:
        lines = ["| environment variable | default | what |", "|---|---|---|"]
        lines += [f"| {_cell(r.env)} | {_cell(r.default)} | {_cell(r.description)} |" for r in rows]
    return "\n".join(lines) + "\n"


def document() -> str:
    """docs/configuration.md as the code says it should be."""
    classes = settings_classes()
    sections = [HEADER, "## Every service\n\nRead by every service and by the `mlp` command.\n"]
    sections.append(_table(shared_rows(classes), with_flags=False))
    listed = set()
    for path in SERVICE_COMMANDS:
        command = _command(path)
        summary = " ".join((command.help or "").strip().split("\n\n")[0].split())
        sections.append(f"## `mlp {' '.join(path)}`\n\n{summary}\n")
        rows = service_rows(path, classes)
        listed |= {row.env for row in rows}
        sections.append(_table(rows))
    listed |= {row.env for row in shared_rows(classes)}
    direct = [row for row in environment_constants() if row.env not in listed]
    if direct:
        sections.append(
            "## Read straight from the environment\n\nBy the module named, wherever it runs "
            "(services, the `mlp` command, the Python client).\n"
        )
        lines = ["| environment variable | read by | what |", "|---|---|---|"]
        lines += [f"| {_cell(r.env)} | {_cell(r.flags)} | {_cell(r.description)} |" for r in direct]
        sections.append("\n".join(lines) + "\n")
    return "\n".join(sections)


def readme_table() -> str:
    """The README's short table: the settings every service shares."""
    return _table(shared_rows(settings_classes()), with_flags=False)


def _readme_with(table: str, readme: str) -> str:
    start, end = readme.find(README_START), readme.find(README_END)
    if start < 0 or end < start:
        raise SystemExit(f"{README}: the markers {README_START!r} ... {README_END!r} are missing")
    return readme[: start + len(README_START)] + "\n" + table + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    arguments = parser.parse_args(argv)
    expected = {DOCUMENT: document()}
    readme = README.read_text(encoding="utf-8")
    expected[README] = _readme_with(readme_table(), readme)
    stale = [
        path
        for path, text in expected.items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    if arguments.check:
        for path in stale:
            print(f"{path.relative_to(REPO)} differs from the code: run scripts/gen_config_table")
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(expected[path], encoding="utf-8")
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
