"""DeepSHAP through `shap.DeepExplainer`, where shap supports the framework.

shap's DeepExplainer needs the framework's own model and tensors (it rewrites
gradients inside the framework), so this explainer hands it `adapter.model`
and `adapter.to_framework(...)` arrays; it imports no framework itself. shap
supports PyTorch and TensorFlow; other backends get a `CapabilityError` that
names `gradient_shap` (expected gradients, on any backend with gradients).
Additivity is reported per sample in `convergence_delta`
(sum(attributions) + base value - f(x)); `background` is summarised to
`max_background` sampled rows (DeepSHAP's cost grows with it).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from xai_core import Attribution, BatchedModel, Explainer, hookimpl
from xai_core.errors import CapabilityError, ModelOutputError, XaiError
from xai_core.explainer import check_positive_int, resolve_seed
from xai_core.validation import check_background
from xai_core_explainers.shap_support import (
    additivity_gap,
    require,
    transformers_probe_safe,
)

SUPPORTED = {"torch": "pytorch", "tensorflow": "tensorflow"}
#: a gap larger than this fraction of the outputs (or than this, for outputs below 1) warns
ADDITIVITY_TOLERANCE = 1e-2


class AdditivityWarning(UserWarning):
    """SHAP values that do not sum to the explained output minus the expected output."""


class DeepShap(Explainer):
    name = "deep_shap"
    defaults = {"background": None, "max_background": 100, "seed": None}
    requires = ("to_framework",)

    def validate(self) -> None:
        check_positive_int("max_background", self.options["max_background"])
        if self.options["background"] is None:
            check_background(None, np.zeros((1, 1)), self.name)

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> Attribution:
        if model.backend not in SUPPORTED:
            raise CapabilityError(
                f"deep_shap runs shap.DeepExplainer, which supports PyTorch and TensorFlow "
                f"models, not the {model.backend!r} backend: use gradient_shap (expected "
                "gradients, the same attribution family) on this backend."
            )
        shap = require("shap", "shap")
        seed = resolve_seed(self.options["seed"])
        background = check_background(self.options["background"], inputs, self.name, np.float64)
        limit = self.options["max_background"]
        if len(background) > limit:
            background = background[
                np.random.default_rng(seed).choice(len(background), limit, False)
            ]
        adapter = model.adapter
        if model.layout is not None and model.layout.packed:
            raise CapabilityError(
                "deep_shap hands shap.DeepExplainer a model of one input tensor; this model "
                "takes several inputs. Use gradient_shap (expected gradients, the same "
                "attribution family), which explains several inputs on any backend."
            )
        # shap's PyTorch path takes tensors, its TensorFlow path NumPy arrays
        convert = adapter.to_framework if model.backend == "torch" else np.asarray
        bg = convert(background.astype(inputs.dtype))
        # output= and forward_kwargs reach the model through a framework wrapper; batch-first
        # kwargs belong to one sample, so each sample is explained with its own (its
        # background rows too, as in gradient_shap)
        groups = (
            [slice(0, len(inputs))]
            if not model.batch_kwargs
            else [slice(i, i + 1) for i in range(len(inputs))]
        )
        values, expected = [], []
        for rows in groups:
            row_kwargs = {k: v[rows] for k, v in model.batch_kwargs.items()}
            framework_model = adapter.framework_model(dict(model.constant_kwargs), row_kwargs)
            part, base = _shap_values(
                shap, model.backend, adapter, framework_model, bg, convert(inputs[rows])
            )
            values.append(part if part.ndim > inputs.ndim else part[..., None])
            expected.append(np.broadcast_to(base, (rows.stop - rows.start, base.shape[-1])))
        values = np.concatenate(values, axis=0)
        n = len(inputs)
        k = int(np.prod(model.output_shape or (1,)))
        if values.shape != (*inputs.shape, k):
            # shap calls the model itself: its outputs are checked here, by their traces
            raise ModelOutputError(
                f"shap.DeepExplainer got other outputs from the model than explain's own "
                f"call (values of shape {values.shape} for inputs {inputs.shape} and {k} "
                "outputs): a model must return one output row per input row, and the same "
                "outputs, on every call."
            )
        picked = np.moveaxis(values, -1, 1)[np.arange(n), target]
        expected = np.concatenate(expected, axis=0)
        if expected.shape[1] != k:
            raise ModelOutputError(
                f"shap.DeepExplainer's expected value has {expected.shape[1]} outputs, the "
                f"model {k}: a model must return the same outputs on every call."
            )
        base_values = expected[np.arange(n), target]
        # a fresh call, not the core's cached prediction pass: shap ran the model in between,
        # and a model that changed (a row dropped, other outputs) is refused here
        outputs = model.forward(inputs.copy())[np.arange(n), target].astype(np.float64)
        gap = additivity_gap(picked, base_values, outputs)
        tolerance = ADDITIVITY_TOLERANCE * max(1.0, float(np.abs(outputs).max()))
        if np.abs(gap).max() > tolerance:
            warnings.warn(
                f"deep_shap's attributions do not add up to f(x) - E[f(background)]: the "
                f"largest gap is {np.abs(gap).max():.3g} (outputs up to "
                f"{np.abs(outputs).max():.3g}). shap's DeepLIFT rules do not cover every "
                "operation of this model (attention, normalisation, custom ops); treat the "
                "values with care, or use gradient_shap / integrated_gradients.",
                AdditivityWarning,
                stacklevel=2,
            )
        return Attribution(
            attributions=picked.astype(np.float64),
            convergence_delta=gap,
            extras={"base_values": base_values},
            options={"seed": seed},
        )


def _shap_values(
    shap: Any, backend: str, adapter: Any, framework_model: Any, bg: Any, x: Any
) -> tuple[np.ndarray, np.ndarray]:
    """(shap values, expected value per output) of shap.DeepExplainer on `x`."""
    try:
        # shap patches the model (hooks, attributes) or the framework (gradient
        # registry); the adapter puts everything back however shap ends
        with adapter.foreign_session(), transformers_probe_safe(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explainer = shap.DeepExplainer(framework_model, bg)
            values = explainer.shap_values(x, check_additivity=False)
    except XaiError:
        raise
    except Exception as exc:  # noqa: BLE001 - shap's own limits, explained
        hint = ""
        if backend == "tensorflow" and "NoneType" in str(exc):
            hint = " shap needs a Keras model with a fixed input shape (no None but the batch)."
        raise CapabilityError(
            f"shap.DeepExplainer cannot explain this {backend} model: "
            f"{type(exc).__name__}: {str(exc)[:300]}.{hint} Use gradient_shap (expected "
            "gradients, the same attribution family), which works on any model with "
            "gradients."
        ) from exc
    return np.asarray(values), np.atleast_1d(np.asarray(explainer.expected_value, np.float64))


@hookimpl
def xai_explainers() -> list[type[Explainer]]:
    return [DeepShap]
