"""A registered pipeline translated into plain steps and converted to an ONNX graph.

skl2onnx converts scikit-learn pipelines, onnxmltools the boosters (LightGBM, XGBoost) it
registers here. PyCaret's `Pipeline` is refused as it is: its steps are `TransformerWrapper`s
that apply a transformer to a subset of the columns and keep pandas column names. Translated:

- a wrapper over every current column becomes its transformer; a wrapper over no column, one
  that only touches the target (the label encoder), `CleanColumnNames` (it renames columns,
  and the graph takes columns by position) and `None`/"passthrough" steps drop out;
- a wrapper over a subset of the columns has no converter (`UntranslatableError` says which).

`SimpleImputer` becomes `NanFill`, whose graph (IsNaN + Where) runs in double: ONNX Runtime
has no double kernel for the ai.onnx.ml `Imputer` skl2onnx emits, and a float32 graph can move
a value across a tree's threshold. The graph is converted for double input first; float32 only
when ONNX Runtime cannot run the double graph (onnxmltools' LightGBM trees are float32), and the
check in `compiled_model` decides whether float32 is exact enough.

Just over 300 lines: the translation of PyCaret's steps and the converters registered for our
own and the boosters' steps must agree on every step's shape, so they are read together.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from mlplatform.common.extras import missing_extra

try:
    from onnx.numpy_helper import from_array
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import convert_sklearn, update_registered_converter
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.algebra.onnx_ops import OnnxIsNaN, OnnxWhere
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from skl2onnx.operator_converters.random_forest import (
        convert_sklearn_random_forest_classifier,
        convert_sklearn_random_forest_regressor_converter,
    )
except ImportError as error:
    raise missing_extra("compiled", error) from error
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

#: ONNX opsets the graphs target: ai.onnx.ml 3 has tree ensembles with double thresholds.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
#: Transformers that keep the columns' number and order (a later subset wrapper can follow).
_SHAPE_KEEPING = {
    "SimpleImputer", "StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler",
    "Normalizer", "NanFill",
}  # fmt: skip


class UntranslatableError(ValueError):
    """A step of the pipeline that cannot become part of an ONNX graph; says which and why."""


class NanFill(TransformerMixin, BaseEstimator):
    """Replaces NaN in column j with `fill_values[j]`: a fitted `SimpleImputer`, convertible
    to a graph that runs in double."""

    def __init__(self, fill_values: np.ndarray) -> None:
        self.fill_values = fill_values

    def fit(self, X: Any, y: Any = None) -> NanFill:
        return self

    def transform(self, X: Any) -> np.ndarray:
        values = np.array(X, dtype=np.float64)
        missing = np.isnan(values)
        values[missing] = np.broadcast_to(self.fill_values, values.shape)[missing]
        return values


def _nan_fill_shape(operator: Any) -> None:
    rows, columns = operator.inputs[0].get_first_dimension(), operator.inputs[0].type.shape[1]
    operator.outputs[0].type = operator.inputs[0].type.__class__([rows, columns])


def _nan_fill_converter(scope: Any, operator: Any, container: Any) -> None:
    source = operator.inputs[0]
    dtype = np.float64 if isinstance(source.type, DoubleTensorType) else np.float32
    fill = np.asarray(operator.raw_operator.fill_values, dtype=dtype).reshape(1, -1)
    opset = container.target_opset
    filled = OnnxWhere(
        OnnxIsNaN(source, op_version=opset),
        fill,
        source,
        op_version=opset,
        output_names=operator.outputs[:1],
    )
    filled.add_to(scope, container)


#: Tree attributes that ai.onnx.ml opset 3 also takes as double tensors (`<name>_as_tensor`).
_TREE_DOUBLE_ATTRIBUTES = ("nodes_values", "class_weights", "target_weights", "base_values")


def _as_double_tree_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """Tree attributes with every threshold and weight as a double tensor (ai.onnx.ml 3)."""
    for name in _TREE_DOUBLE_ATTRIBUTES:
        value = attributes.get(name)
        if value is not None and not isinstance(value, str):
            attributes[f"{name}_as_tensor"] = from_array(
                np.asarray(attributes.pop(name), dtype=np.float64)
            )
    attributes.pop("nodes_hitrates", None)  # unused by ONNX Runtime
    return attributes


def _double_trees(converter: Any, opset_argument: bool = True) -> Any:
    """`converter` (skl2onnx's forests, onnxmltools' LightGBM) emitting double thresholds.

    Both write tree thresholds as float32 attributes whatever the input type, so a double
    value just above a threshold can fall on the other side of its float32 rounding (measured:
    12 of 849 labels of a 100-tree forest differed; a LightGBM probability moved by 0.004).
    ai.onnx.ml opset 3 takes thresholds and weights as double tensors: each tree node is
    added with them. The trees' scores stay float32 (ONNX's tree operators output float),
    which the check's tolerance covers.
    """

    def convert(scope: Any, operator: Any, container: Any) -> None:
        if not isinstance(operator.inputs[0].type, DoubleTensorType):
            converter(scope, operator, container)
            return
        add_node = container.add_node

        def add_double_node(op_type: str, *arguments: Any, **attributes: Any) -> Any:
            if op_type.startswith("TreeEnsemble"):
                attributes = _as_double_tree_attributes(attributes)
                attributes["op_version"] = 3
            return add_node(op_type, *arguments, **attributes)

        container.add_node = add_double_node
        try:
            if opset_argument:
                converter(scope, operator, container, op_version=3)
            else:
                converter(scope, operator, container)
        finally:
            container.add_node = add_node

    return convert


def _float_scores(shape_calculator: Any, position: int) -> Any:
    """A tree model's shapes with its output at `position` (a classifier's probabilities, a
    regressor's values) float32, what ONNX's tree operators output whatever the input type."""

    def calculate(operator: Any) -> None:
        shape_calculator(operator)
        scores = operator.outputs[position]
        scores.type = FloatTensorType(scores.type.shape)

    return calculate


def _register_converters() -> None:
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    update_registered_converter(NanFill, "MlplatformNanFill", _nan_fill_shape, _nan_fill_converter)
    classifier_options = {
        "zipmap": [True, False, "columns"],
        "raw_scores": [True, False],
        "nocl": [True, False],
        "output_class_labels": [False, True],
        "decision_path": [True, False],
        "decision_leaf": [True, False],
    }
    regressor_options = {"decision_path": [True, False], "decision_leaf": [True, False]}
    for forest, alias in ((RandomForestClassifier, "SklearnRandomForestClassifier"),
                          (ExtraTreesClassifier, "SklearnExtraTreesClassifier")):  # fmt: skip
        update_registered_converter(
            forest,
            alias,
            _float_scores(calculate_linear_classifier_output_shapes, 1),
            _double_trees(convert_sklearn_random_forest_classifier),
            options=classifier_options,
        )
    for forest, alias in ((RandomForestRegressor, "SklearnRandomForestRegressor"),
                          (ExtraTreesRegressor, "SklearnExtraTreesRegressor")):  # fmt: skip
        update_registered_converter(
            forest,
            alias,
            _float_scores(calculate_linear_regressor_output_shapes, 0),
            _double_trees(convert_sklearn_random_forest_regressor_converter),
            options=regressor_options,
        )
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
    except ImportError:  # LightGBM comes with PyCaret; without it there is nothing to register
        return
    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        _float_scores(calculate_linear_classifier_output_shapes, 1),
        _double_trees(convert_lightgbm, opset_argument=False),
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    update_registered_converter(
        LGBMRegressor,
        "LightGbmLGBMRegressor",
        _float_scores(calculate_linear_regressor_output_shapes, 0),
        _double_trees(convert_lightgbm, opset_argument=False),
        options={"split": None},
    )


_register_converters()


def _as_nan_fill(imputer: SimpleImputer) -> Any:
    statistics = np.asarray(getattr(imputer, "statistics_", []), dtype=object)
    plain = (
        not imputer.add_indicator
        and isinstance(imputer.missing_values, float)
        and np.isnan(imputer.missing_values)
        and len(statistics) == imputer.n_features_in_
    )
    if not plain:
        return imputer
    try:
        fill = statistics.astype(np.float64)
    except (TypeError, ValueError):
        return imputer  # text statistics: a categorical imputer over text columns
    return imputer if np.isnan(fill).any() else NanFill(fill)


def _only_touches_target(transformer: Any) -> bool:
    return "X" not in inspect.signature(transformer.transform).parameters


def translate(estimator: Any, column_names: list[str]) -> Pipeline:
    """`estimator` (a pipeline, PyCaret's included, or a bare estimator) as a plain scikit-learn
    Pipeline over a matrix of `column_names`; UntranslatableError names the step that cannot."""
    named_steps = (
        list(estimator.steps) if isinstance(estimator, Pipeline) else [("model", estimator)]
    )
    current: list[str] | None = list(column_names)
    plain: list[tuple[str, Any]] = []
    for name, step in named_steps:
        if step is None or (isinstance(step, str) and step == "passthrough"):
            continue
        kind = type(step).__name__
        if type(step).__module__.startswith("pycaret"):
            if kind not in ("TransformerWrapper", "TransformerWrapperWithInverse"):
                raise UntranslatableError(f"step {name!r} ({kind}) has no ONNX translation")
            inner = step.transformer
            include = step._include
            if (
                getattr(step, "_train_only", False)  # PyCaret skips it when predicting
                or _only_touches_target(inner)
                or include == []
                or type(inner).__name__ == "CleanColumnNames"
            ):
                continue
            if include is not None and list(include) != current:
                where = (
                    f"{len(include)} of {len(current)} columns"
                    if current is not None
                    else f"{len(include)} columns after a step that changed the columns"
                )
                raise UntranslatableError(
                    f"step {name!r} applies {type(inner).__name__} to {where}; "
                    "a subset wrapper has no ONNX converter"
                )
            step, kind = inner, type(inner).__name__
        if isinstance(step, SimpleImputer):
            step = _as_nan_fill(step)
            kind = type(step).__name__
        if type(step) not in sklearn_operator_name_map:
            raise UntranslatableError(f"step {name!r} ({kind}) has no ONNX converter")
        if kind not in _SHAPE_KEEPING:
            current = None
        plain.append((name, step))
    if not plain:
        raise UntranslatableError("the pipeline has no step to compile")
    return Pipeline(plain)


def to_onnx(pipeline: Pipeline, column_count: int, double: bool, classifier: bool) -> bytes:
    """The serialized ONNX graph of `pipeline` over one (rows, `column_count`) input named
    `input`, in double or float32. Classifiers output a label and a probability matrix."""
    final = pipeline.steps[-1][1]
    tensor_type = DoubleTensorType if double else FloatTensorType
    options = {id(final): {"zipmap": False}} if classifier else None
    try:
        graph = convert_sklearn(
            pipeline,
            initial_types=[("input", tensor_type([None, column_count]))],
            options=options,
            target_opset=TARGET_OPSET,
        )
    except Exception as error:  # skl2onnx raises RuntimeError, TypeError, NotImplementedError
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UntranslatableError(f"skl2onnx cannot convert the pipeline: {text}") from None
    return graph.SerializeToString()
