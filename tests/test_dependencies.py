"""What `pip install mlplatform` brings, what the extras add, and what the gateway image needs.

- Every third-party import of the code is declared in a pyproject (core or an extra).
- The optional drivers (pymongo, psycopg2, boto3, kaggle) are extras, never core.
- With only the core installed (the extras' packages made uninstallable in a subprocess),
  every module imports except the MongoDB store's, which fail with an error naming
  `pip install 'mlplatform[mongo]'`; `open_store("mongodb://...")` says the same.
- `mlp gateway` imports without PyCaret, MLflow or scikit-learn, and everything it imports is
  installed by the gateway image's requirement list.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
CLIENT_PYPROJECT = tomllib.loads((REPO / "clients/python/pyproject.toml").read_text())["project"]
PROBE = REPO / "tests" / "support" / "import_probe.py"
GATEWAY_REQUIREMENTS = REPO / "deploy" / "images" / "gateway-requirements.txt"
#: What the gateway image leaves out: the ML stack.
ML_STACK_MODULES = ["pycaret", "mlflow", "sklearn", "scipy", "lightgbm", "skops", "pyarrow"]
#: Packages other packages import only when they happen to be installed (the gateway image
#: does not have them; the development environment does).
IMPORTED_WHEN_PRESENT = {
    "opentelemetry": "grpc's observability hooks",
    "grpc_tools": "grpc's runtime proto loader",
    "python_multipart": "fastapi's form parsing check",
    "multipart": "fastapi's form parsing check",
    "dotenv": "pydantic-settings' .env support (a dependency of pydantic-settings anyway)",
    "_distutils_hack": "setuptools' .pth hook in the virtualenv",
    "mpl_toolkits": "a namespace .pth of matplotlib in the virtualenv",
    "cython": "pydantic.v1's check whether it runs compiled",
    "Cython": "pydantic.v1's check whether it runs compiled",
    "ujson": "fastapi's UJSONResponse, when ujson is installed",
    "watchfiles": "uvicorn's reloader, when watchfiles is installed",
    "brotli": "httpx's and urllib3's br decoding, when brotli is installed (tritonclient[http])",
    "sniffio": "httpx's check for trio, when sniffio is installed",
}
OWN_MODULES = {"mlplatform", "inference", "__future__"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    return {normalized(Requirement(text).name) for text in requirements}


def third_party_imports(folder: Path) -> dict[str, Path]:
    """Top-level names the code under `folder` imports (first file that does), stdlib left out."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names and top not in OWN_MODULES:
                    found.setdefault(top, path)
    return found


def distributions_of(module: str) -> set[str]:
    names = importlib.metadata.packages_distributions().get(module, [])
    return {normalized(name) for name in names}


def _is_namespace(module: str) -> bool:
    spec = importlib.util.find_spec(module)
    return spec is not None and spec.origin is None


def _subpackages(distribution: str, namespace: str) -> set[str]:
    """The `namespace.x` packages `distribution` installs."""
    found = set()
    for path in importlib.metadata.distribution(distribution).files or []:
        parts = path.parts
        if len(parts) > 2 and parts[0] == namespace and not parts[1].endswith(".dist-info"):
            found.add(f"{namespace}.{parts[1]}")
    return found


def extra_modules() -> dict[str, set[str]]:
    """The import names of each extra's own packages (what "not installed" means for it)."""
    extras = {name: reqs for name, reqs in PYPROJECT["optional-dependencies"].items()}
    extras.pop("dev")
    modules_by_distribution: dict[str, set[str]] = {}
    for module, distributions in importlib.metadata.packages_distributions().items():
        for distribution in distributions:
            modules_by_distribution.setdefault(normalized(distribution), set()).add(module)
    # A namespace package shared with the core (`opentelemetry`: the API is core, the SDK an
    # extra) is not the extra's: its own subpackages are (`opentelemetry.sdk`).
    for distribution, modules in modules_by_distribution.items():
        for module in [name for name in modules if _is_namespace(name)]:
            modules.discard(module)
            modules |= _subpackages(distribution, module)
    found = {}
    for extra, requirements in extras.items():
        names = requirement_names(requirements)
        found[extra] = set().union(*(modules_by_distribution.get(name, set()) for name in names))
        assert found[extra], f"the {extra!r} extra is not installed here: run scripts/setup"
    return found


def server_modules() -> list[str]:
    """Every module of the platform and the client package, as an import name."""
    package_dirs: dict[str, str] = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"][
        "setuptools"
    ]["package-dir"]
    roots = {package: REPO / folder for package, folder in package_dirs.items()}
    client_src = REPO / "clients/python/src"
    roots |= {"mlplatform.client": client_src / "mlplatform/client"}
    roots |= {"mlplatform.v1": client_src / "mlplatform/v1", "inference": client_src / "inference"}
    modules = []
    for package, folder in roots.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__main__":  # runs the command line when imported
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules.append(".".join([package, *parts]))
    return modules


def probe(*arguments: str) -> dict[str, object]:
    completed = subprocess.run(
        [sys.executable, str(PROBE), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_every_third_party_import_is_declared() -> None:
    declared = requirement_names(PYPROJECT["dependencies"]) | requirement_names(
        CLIENT_PYPROJECT["dependencies"]
    )
    for extra_requirements in PYPROJECT["optional-dependencies"].values():
        declared |= requirement_names(extra_requirements)
    client_declared = requirement_names(CLIENT_PYPROJECT["dependencies"])
    checks = [
        (REPO / "services", declared),
        (REPO / "gateway", declared),
        (REPO / "clients/python/src/mlplatform/client", client_declared),
    ]
    for folder, allowed in checks:
        for module, path in third_party_imports(folder).items():
            distributions = distributions_of(module)
            where = path.relative_to(REPO)
            assert distributions, f"{where} imports {module}, which is not installed"
            assert distributions & allowed, (
                f"{where} imports {module} (from {sorted(distributions)}), "
                f"which {folder.relative_to(REPO)}'s pyproject does not declare"
            )


def test_optional_drivers_are_extras_not_core() -> None:
    core = requirement_names(PYPROJECT["dependencies"])
    extras = {
        name: requirement_names(requirements)
        for name, requirements in PYPROJECT["optional-dependencies"].items()
    }
    assert not core & {"pymongo", "psycopg2-binary", "psycopg2", "boto3", "kaggle"}
    assert extras["mongo"] == {"pymongo"}
    assert extras["postgres"] == {"psycopg2-binary"}
    assert extras["s3"] == {"boto3"}
    assert extras["kaggle"] == {"kaggle"}


def test_every_module_imports_with_only_the_core_installed() -> None:
    blocked = ",".join(sorted(set().union(*extra_modules().values())))
    modules = server_modules()
    result = probe("--block", blocked, "--open-store", "mongodb://127.0.0.1:9/x", *modules)
    errors: dict[str, str | None] = result["errors"]  # type: ignore[assignment]
    assert set(errors) == set(modules)
    failed = {module: error for module, error in errors.items() if error is not None}
    extra_of_module = {
        "mlplatform.common.store.mongo": "mongo",
        "mlplatform.common.store.mongo_queries": "mongo",
        "mlplatform.common.store.mongo_schema": "mongo",
        "mlplatform.common.store.mongo_outcomes": "mongo",
        "mlplatform.common.monitoring.drift": "monitor",
        "mlplatform.common.monitoring.summary": "monitor",
        "mlplatform.common.monitoring.exporter": "monitor",
        "mlplatform.common.compiled_model": "compiled",
        "mlplatform.common.onnx_translation": "compiled",
    }
    assert set(failed) == set(extra_of_module)
    for module, error in failed.items():
        assert error.startswith("MissingExtraError: ")
        assert f"pip install 'mlplatform[{extra_of_module[module]}]'" in error
    store_error = str(result["open_store"])
    assert store_error.startswith("StoreError: ")
    assert "pip install 'mlplatform[mongo]'" in store_error


def requirement_closure(names: set[str]) -> set[str]:
    """The distributions pip installs for `names` (no extras), by their installed metadata."""
    closure: set[str] = set()
    pending = [normalized(name) for name in names]
    while pending:
        name = pending.pop()
        if name in closure:
            continue
        closure.add(name)
        for text in importlib.metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(normalized(requirement.name))
    return closure


def gateway_requirements() -> set[str]:
    lines = GATEWAY_REQUIREMENTS.read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_the_gateway_imports_without_the_ml_stack_and_its_image_installs_all_it_needs() -> None:
    blocked = ML_STACK_MODULES + sorted(set().union(*extra_modules().values()))
    result = probe(
        "--block",
        ",".join(blocked),
        "--call-gateway",
        "mlplatform.cli.main",
        "mlplatform.gateway.server",
    )
    assert result["errors"] == {"mlplatform.cli.main": None, "mlplatform.gateway.server": None}
    listed = gateway_requirements()
    assert requirement_names(sorted(listed)) <= requirement_names(
        PYPROJECT["dependencies"]
    ) | requirement_names(CLIENT_PYPROJECT["dependencies"]), "list only declared packages"
    installed = requirement_closure(listed) | {"mlplatform", "mlplatform-client"}
    missing = {}
    for module in result["top_level"]:  # type: ignore[union-attr]
        if module in sys.stdlib_module_names or module in IMPORTED_WHEN_PRESENT:
            continue
        distributions = distributions_of(module)
        if not distributions or module.startswith("_"):  # extension internals, built-ins
            continue
        if not distributions & installed:
            missing[module] = sorted(distributions)
    assert not missing, f"the gateway imports these, which its image does not install: {missing}"
