"""Run as a script: imports the given modules with some top-level packages made uninstallable,
then prints JSON: each module's import error (null when it imported) and every top-level
package the process ended up with.

    python import_probe.py --block pymongo,bson [--call-gateway] MODULE...

A meta-path finder raises ImportError for the blocked names, as if they were not installed;
a subprocess, because a module once imported cannot be un-imported.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import json
import sys
from collections.abc import Sequence
from types import ModuleType


class Uninstalled(importlib.abc.MetaPathFinder):
    """Makes every module under the given names fail to import (a top-level name, or a
    subpackage of a namespace package such as `opentelemetry.sdk`)."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> None:
        if any(fullname == name or fullname.startswith(f"{name}.") for name in self.names):
            raise ImportError(f"No module named {fullname!r} (blocked)", name=fullname)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--block", default="")
    parser.add_argument("--call-gateway", action="store_true")
    parser.add_argument("--open-store", default="")
    parser.add_argument("modules", nargs="*")
    arguments = parser.parse_args()
    sys.meta_path.insert(0, Uninstalled({name for name in arguments.block.split(",") if name}))
    errors: dict[str, str | None] = {}
    for module in arguments.modules:
        try:
            importlib.import_module(module)
            errors[module] = None
        except Exception as error:  # any failure is reported, with its reason
            errors[module] = f"{type(error).__name__}: {error}"
    result: dict[str, object] = {"errors": errors}
    if arguments.call_gateway:
        from mlplatform.gateway.app import create_app
        from mlplatform.gateway.mlflow_formats import parse_csv  # pandas, as CSV bodies do
        from mlplatform.gateway.settings import GatewaySettings

        create_app(GatewaySettings())
        parse_csv(b"a,b\n1,x\n")
    if arguments.open_store:
        from mlplatform.common.store import open_store

        try:
            open_store(arguments.open_store)
            result["open_store"] = None
        except Exception as error:  # any failure is reported, with its reason
            result["open_store"] = f"{type(error).__name__}: {error}"
    result["top_level"] = sorted({name.partition(".")[0] for name in sys.modules})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
