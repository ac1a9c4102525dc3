"""Pipeline steps: each a small unit in a registry; a new step joins without touching others.

Importing this package registers every built-in step.
"""

from mlplatform.trainer.steps import load_data, register, train, validate_data
from mlplatform.trainer.steps.base import STEP_HANDLERS, PipelineContext, StepFailure, step

__all__ = [
    "STEP_HANDLERS",
    "PipelineContext",
    "StepFailure",
    "load_data",
    "register",
    "step",
    "train",
    "validate_data",
]
