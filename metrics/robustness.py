"""Robustness: does the explanation stay put when the input barely moves?

`sensitivity_max` (Yeh et al. 2019) with Captum's definition: the largest
||a(x + u) - a(x)|| / ||a(x)|| over draws u uniform in [-radius, radius] (a zero
norm counts as 1). With `return_nan_when_prediction_changes` (Quantus's option), a sample
for which any draw moves the predicted class scores NaN. The perturbed inputs of every
sample and draw are re-explained in one call, with the explanation's own method and
options (seed included).
"""

from __future__ import annotations

import numpy as np

from xai_core import hookimpl
from xai_core.explainer import (
    check_bool,
    check_choice,
    check_number,
    check_positive_int,
    resolve_seed,
)
from xai_core.metric import Metric, MetricContext, MetricResult
from xai_core_metrics.common import check_perturbations, flat

NAN_OPTION = "return_nan_when_prediction_changes"

#: norm_ord values and what they compute on each flattened difference
NORMS = {"fro": 2, 2: 2, 1: 1, "inf": np.inf}


class SensitivityMax(Metric):
    """Draw j is `numpy.random.default_rng([seed, j]).uniform(-radius, radius, shape)`
    (the inputs' shape, channels first) cast to the inputs' dtype, or `perturbations`
    (draws, samples, ...) in the inputs' layout are the noise added."""

    name = "sensitivity_max"
    higher_is_better = False
    requires = ("forward", "explain")
    per_input_options = {"perturbations": "draws"}
    defaults = {
        "n_perturb_samples": 10,
        "perturb_radius": 0.02,
        "norm_ord": "fro",
        "perturbations": None,
        "seed": None,
        "return_nan_when_prediction_changes": False,
    }

    def validate(self) -> None:
        check_positive_int("n_perturb_samples", self.options["n_perturb_samples"])
        check_number("perturb_radius", self.options["perturb_radius"])
        check_choice("norm_ord", self.options["norm_ord"], list(NORMS))
        check_bool("return_nan_when_prediction_changes", self.options[NAN_OPTION])

    def score(self, context: MetricContext) -> MetricResult:
        x = context.float_inputs()
        a = context.input_attributions()
        seed = resolve_seed(self.options["seed"])
        given = self.options["perturbations"]
        if given is not None:
            noise = check_perturbations(given, x)
        else:
            radius = self.options["perturb_radius"]
            shape = (len(x), *context.canonical_shape)
            noise = np.stack(
                [
                    context.from_canonical(
                        np.random.default_rng([seed, j]).uniform(-radius, radius, shape)
                    )
                    for j in range(self.options["n_perturb_samples"])
                ]
            ).astype(x.dtype)
        moved = context.reexplain((x[None] + noise).astype(x.dtype))
        order = NORMS[self.options["norm_ord"]]
        base = np.linalg.norm(flat(a), ord=order, axis=1)
        base = np.where(base == 0, 1.0, base)
        changes = np.linalg.norm(
            (moved - a[None]).reshape(len(noise), len(x), -1), ord=order, axis=2
        )
        ratios = changes / base[None]
        if self.options[NAN_OPTION]:  # Quantus: a sample whose class moves scores NaN
            labels = context.labels_of_blocks((x[None] + noise).astype(x.dtype))
            ratios[labels[1:] != labels[:1]] = np.nan
        return MetricResult(ratios.max(axis=0), options={"seed": seed})


@hookimpl
def xai_metrics() -> list[type[Metric]]:
    return [SensitivityMax]
