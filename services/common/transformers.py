"""Transformers that travel inside saved model pipelines.

They live in an importable module of the platform, never in a script or a notebook,
because a pickled pipeline refers to its classes by module path: the predictor's
process must be able to import them to load the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin


class TrigonometryFeatures(TransformerMixin, BaseEstimator):
    """Adds `<col>_sin`, `<col>_cos` and `<col>_tan` for numeric columns.

    PyCaret 2's `trigonometry_features` option, gone from PyCaret 3; pipelines that ask
    for it get this transformer inside their saved pipeline instead.

    `columns`: the columns to expand (those present and numeric at fit time); None means
    every numeric column seen at fit time.
    """

    def __init__(self, columns: list[str] | None = None) -> None:
        self.columns = columns

    def fit(self, X: pd.DataFrame, y: object = None) -> TrigonometryFeatures:
        frame = pd.DataFrame(X)
        numeric = [name for name in frame.columns if pd.api.types.is_numeric_dtype(frame[name])]
        wanted = numeric if self.columns is None else [c for c in self.columns if c in numeric]
        self.expanded_columns_ = list(wanted)
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        frame = pd.DataFrame(X)
        added: dict[str, np.ndarray] = {}
        for name in self.expanded_columns_:
            values = frame[name].to_numpy(dtype=np.float64)
            added[f"{name}_sin"] = np.sin(values)
            added[f"{name}_cos"] = np.cos(values)
            added[f"{name}_tan"] = np.tan(values)
        return pd.concat([frame, pd.DataFrame(added, index=frame.index)], axis=1)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        suffixed = [f"{n}_{f}" for n in self.expanded_columns_ for f in ("sin", "cos", "tan")]
        return np.asarray([*self.feature_names_in_, *suffixed], dtype=object)
