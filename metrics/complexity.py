"""Complexity: how concentrated an explanation is, from the attributions alone.

Quantus 0.6's definitions and options (`normalise`, `abs`, both True by default), except
that the normalisation by the largest |a| is per sample here (Quantus divides by the
largest over the batch, so a sample's score would depend on its neighbours; the two
differ only through Quantus's 1e-7 and 1e-12 stabilisers, and not at all for one sample
or with `normalise=False`). As in Quantus, normalising comes first, then |.|.

- `sparseness` (Chalasani et al. 2020): the Gini index of the values; higher is sparser.
- `complexity` (Bhatt et al. 2020): the entropy of the values / sum |values|; lower is
  simpler.
- `effective_complexity` (Nguyen & Martinez 2020): how many values exceed `eps`; lower
  is simpler.
"""

from __future__ import annotations

import numpy as np

from xai_core import hookimpl
from xai_core.errors import XaiError
from xai_core.explainer import check_bool, check_number
from xai_core.metric import Metric, MetricContext, MetricResult
from xai_core_metrics.common import flat


def prepared_values(context: MetricContext, metric: str, options: dict) -> np.ndarray:
    """The attributions, flattened, divided by each sample's largest |a| when `normalise`
    (rows of zeros stay zeros), then made absolute when `abs`."""
    if context.attributions is None:
        raise XaiError(
            f"metric {metric!r} scores attributions, and the {context.method!r} explanation "
            "has none (capture-only method)."
        )
    a = flat(context.attributions)
    if options["normalise"]:
        top = np.abs(a).max(axis=1, keepdims=True)
        a = np.divide(a, top, out=np.zeros_like(a), where=top > 0)
    return np.abs(a) if options["abs"] else a


class _FromValues(Metric):
    """A score of the attributions alone, with Quantus's `normalise` and `abs` options."""

    defaults = {"normalise": True, "abs": True}

    def validate(self) -> None:
        check_bool("normalise", self.options["normalise"])
        check_bool("abs", self.options["abs"])

    def values(self, context: MetricContext) -> np.ndarray:
        return prepared_values(context, self.name, self.options)


class Sparseness(_FromValues):
    name = "sparseness"
    higher_is_better = True

    def score(self, context: MetricContext) -> MetricResult:
        a = np.sort(self.values(context) + 1e-7, axis=1)
        d = a.shape[1]
        weights = 2 * np.arange(1, d + 1) - d - 1
        return MetricResult((weights * a).sum(axis=1) / (d * a.sum(axis=1)))


class Complexity(_FromValues):
    name = "complexity"
    higher_is_better = False

    def score(self, context: MetricContext) -> MetricResult:
        a = self.values(context)
        total = np.abs(a).sum(axis=1, keepdims=True)  # Quantus: divided by sum |a|
        p = np.divide(a, total, out=np.zeros_like(a), where=total > 0)
        with np.errstate(invalid="ignore"):  # negative shares (abs=False): NaN, as Quantus
            return MetricResult(-(p * np.log(p + 1e-12)).sum(axis=1))


class EffectiveComplexity(_FromValues):
    name = "effective_complexity"
    higher_is_better = False
    defaults = {"eps": 1e-5, "normalise": True, "abs": True}

    def validate(self) -> None:
        super().validate()
        check_number("eps", self.options["eps"])

    def score(self, context: MetricContext) -> MetricResult:
        return MetricResult((self.values(context) > self.options["eps"]).sum(axis=1))


@hookimpl
def xai_metrics() -> list[type[Metric]]:
    return [Sparseness, Complexity, EffectiveComplexity]
