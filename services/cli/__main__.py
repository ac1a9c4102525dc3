"""`python -m mlplatform.cli`: the `mlp` command, for when the console script is not on PATH."""

from mlplatform.cli.main import main

main()
