"""`mlp batch spark`: a registered model over Parquet or CSV on Spark, recorded as a batch."""

from __future__ import annotations

import os

import typer

from mlplatform.cli.inferer_commands import batch_app, print_batch
from mlplatform.common.settings import get_settings


@batch_app.command("spark")
def batch_spark(
    model: str = typer.Option(..., "--model", help="NAME, NAME@ALIAS or NAME/VERSION."),
    input_path: str = typer.Option(
        ..., "--input", help="Parquet or CSV: a file, a directory or a glob; s3a://, hdfs://..."
    ),
    output_path: str = typer.Option(..., "--output", help="Where the Parquet output goes."),
    master: str = typer.Option(
        "local[*]", "--master", help="local[N], spark://HOST:PORT, yarn, k8s://..."
    ),
    id_column: str = typer.Option(
        "",
        "--id-column",
        help="An input column to key the output by (default: a row index); logged "
        "predictions carry it as their prediction key, for `mlp outcomes`.",
    ),
    probabilities: bool = typer.Option(
        False, "--probabilities", help="Add one probability column per class."
    ),
    conf: list[str] = typer.Option([], "--conf", help="A Spark setting, key=value (repeatable)."),
    input_format: str = typer.Option(
        "", "--format", help="parquet or csv; default: from the file names."
    ),
    log_predictions: bool = typer.Option(
        False,
        "--log-predictions",
        help="Write every row to the prediction log, from the executors.",
    ),
    log_sample: int = typer.Option(
        1000, "--log-sample", help="Without --log-predictions: rows sampled into the log."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    batch_id: str = typer.Option("", "--id", help="Batch id; default: new."),
) -> None:
    """Score a registered model on Spark with mlflow.pyfunc.spark_udf; record it as a batch."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mlplatform.common.store import open_store
    from mlplatform.spark.errors import SparkBatchError
    from mlplatform.spark.job import SparkBatchOptions, run_spark_batch
    from mlplatform.spark.session import parse_conf

    # Our own bar shows progress; MLflow's download bars would draw over it.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = get_settings()
    try:
        options = SparkBatchOptions(
            model=model,
            input_path=input_path,
            output_path=output_path,
            master=master,
            id_column=id_column or None,
            with_probabilities=probabilities,
            conf=parse_conf(conf),
            input_format=input_format or None,
            log_predictions=log_predictions,
            sample_rows=log_sample,
            overwrite=overwrite,
            batch_id=batch_id or None,
        )
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("tasks"),
            TimeElapsedColumn(),
            transient=True,
        )
        task = progress.add_task("starting Spark", total=None)

        def show(done: int, known: int, phase: str) -> None:
            # Started with the first Spark stage: errors found before Spark print alone.
            if not progress.live.is_started:
                progress.start()
            progress.update(task, completed=done, total=known or None, description=phase)

        with open_store(settings.resolved_store_uri) as store:
            try:
                result = run_spark_batch(
                    options,
                    store,
                    settings.resolved_store_uri,
                    settings.resolved_mlflow_tracking_uri,
                    on_progress=show,
                )
            finally:
                if progress.live.is_started:
                    progress.stop()
    except SparkBatchError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2 if error.field.startswith("--") else 1) from None
    rate = result.rows / result.seconds if result.seconds else 0.0
    typer.echo(
        f"scored {result.rows} rows in {result.seconds:.1f} s ({rate:,.0f} rows/s); "
        f"output: {output_path}"
    )
    print_batch(result.batch)


def register(app: typer.Typer) -> None:
    """`batch spark` joins the `batch` group, which inferer_commands adds to the app."""
