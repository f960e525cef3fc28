"""`model_randomization`: the sanity check of Adebayo et al. (2018).

An explanation that describes the model must change when the model's weights are
replaced by random ones. The layers with parameters are re-drawn cascading from the
top (the last layer, then the last two, ...; Quantus MPRT's `layer_order="top_down"`),
from the bottom ("bottom_up") or one at a time ("independent") on a copy of the
model, the explanation is recomputed with the same method, options and target at each
step, and compared with the original by Spearman rank correlation of |a| (Quantus
MPRT's default similarity; Pearson and Kendall on request). The score is the mean
similarity over the cascade (lower is better: an explanation that ignores the weights
scores near 1); the curve per layer is in `evaluate(..., details=True)`.
"""

from __future__ import annotations

import numpy as np

from xai_core import hookimpl
from xai_core.errors import OptionError
from xai_core.explainer import check_bool, check_choice, resolve_seed
from xai_core.metric import Metric, MetricContext, MetricResult
from xai_core_metrics.common import CORRELATIONS, flat

SIMILARITIES = CORRELATIONS
#: Quantus MPRT's layer orders, and what the curve's x axis counts
ORDERS = {
    "top_down": "layers randomised, from the top",
    "bottom_up": "layers randomised, from the bottom",
    "independent": "the one layer randomised",
}


class ModelRandomization(Metric):
    name = "model_randomization"
    higher_is_better = False
    requires = ("forward", "explain", "randomized")
    defaults = {
        "similarity": "spearman",
        "abs": True,
        "layers": None,
        "seed": None,
        "layer_order": "top_down",
    }

    def validate(self) -> None:
        check_choice("layer_order", self.options["layer_order"], list(ORDERS))
        check_choice("similarity", self.options["similarity"], list(SIMILARITIES))
        check_bool("abs", self.options["abs"])
        layers = self.options["layers"]
        if layers is not None and (
            isinstance(layers, str) or not all(isinstance(n, str) for n in layers) or not layers
        ):
            raise OptionError(
                f"layers must be a list of layer names (the cascade randomises them from the "
                f"last), or None for every layer with parameters; got {layers!r:.60}."
            )

    def score(self, context: MetricContext) -> MetricResult:
        if context.attributions is None:
            raise OptionError(
                f"model_randomization compares attributions, and {context.method!r} has none."
            )
        seed = resolve_seed(self.options["seed"])
        layers = list(self.options["layers"] or context.parameter_layers())
        if self.options["layers"] is not None:
            context.adapter.check_layers(layers)
        similarity = SIMILARITIES[self.options["similarity"]]

        def prepared(a: np.ndarray) -> np.ndarray:
            a = flat(a)
            return np.abs(a) if self.options["abs"] else a

        original = prepared(context.attributions)
        steps, names = [], []
        order = self.options["layer_order"]
        for layer, randomized in context.randomized_cascade(layers, seed, order):
            moved = context.reexplain(context.inputs[None], adapter=randomized)[0]
            steps.append(similarity(original, prepared(moved)))
            names.append(layer)
        curves = np.stack(steps, axis=1)  # (samples, layers randomised so far)
        return MetricResult(
            np.nanmean(curves, axis=1),
            curves=curves,
            curve_x=np.arange(1, len(names) + 1),
            curve_labels=names,
            x_label=ORDERS[order],
            y_label=f"{self.options['similarity']} similarity to the original",
            options={"seed": seed},
        )


@hookimpl
def xai_metrics() -> list[type[Metric]]:
    return [ModelRandomization]
