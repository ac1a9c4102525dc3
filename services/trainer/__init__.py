"""The trainer: runs pipeline definitions with PyCaret, records them in MLflow, registers."""
