"""The Spark session a batch runs in: Java found first, the driver's Python for the workers,
settings that suit a prediction job.

Spark starts its Python workers with `python3` from PATH unless PYSPARK_PYTHON says otherwise;
the model must be scored by the interpreter that has the ML stack, so both it and the driver's
are set to the running one (on a cluster, set `spark.pyspark.python` with --conf to the
executors' interpreter instead).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlplatform.spark.errors import SparkBatchError

DEFAULT_MASTER = "local[*]"
#: Rows per Arrow batch handed to the model. Spark's default (10,000) leaves the model's
#: per-call cost visible; 50,000 was measured faster on a forest (bench/BATCH.md).
DEFAULT_ARROW_BATCH_ROWS = 50_000
#: What a prediction job wants unless the user's --conf says otherwise: no web UI (a port
#: per job, nobody watching), few shuffle partitions (the job shuffles only for small summaries).
DEFAULT_CONF: Mapping[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.maxRecordsPerBatch": str(DEFAULT_ARROW_BATCH_ROWS),
    "spark.driver.memory": "1g",
}

#: In local mode the driver is the only node: it listens on loopback, not on whatever address
#: the host name resolves to.
LOCAL_CONF: Mapping[str, str] = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


def java_executable() -> str:
    """The `java` Spark will run; SparkBatchError when there is none."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
        raise SparkBatchError(
            "JAVA_HOME", f"{java_home} has no bin/java; point it at a Java 17 JDK"
        )
    found = shutil.which("java")
    if found is None:
        raise SparkBatchError(
            "java", "Spark needs Java (17 or 11) on PATH or JAVA_HOME; none was found"
        )
    return found


def parse_conf(pairs: list[str]) -> dict[str, str]:
    """`--conf key=value` options as a dict; SparkBatchError for one without '='."""
    conf: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise SparkBatchError("--conf", f"expected key=value; got {pair!r}")
        conf[key.strip()] = value.strip()
    return conf


def start_session(master: str, conf: Mapping[str, str], app_name: str) -> Any:
    """A SparkSession on `master` with DEFAULT_CONF overridden by `conf`."""
    java_executable()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName(app_name)
    settings = dict(DEFAULT_CONF)
    if master.startswith("local"):
        settings.update(LOCAL_CONF)
        # Read by the launcher before any setting: keeps it from probing the host's address.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    for key, value in {**settings, **conf}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
