"""Complexity: how concentrated an explanation is, from the attributions alone.

Quantus 0.6's definitions with its defaults (`normalise=True`, `abs=True`), except
that the normalisation by the largest |a| is per sample here (Quantus divides by the
largest over the batch, so a sample's score would depend on its neighbours; the two
differ only through Quantus's 1e-7 and 1e-12 stabilisers).

- `sparseness` (Chalasani et al. 2020): the Gini index of |a|; higher is sparser.
- `complexity` (Bhatt et al. 2020): the entropy of |a| / sum |a|; lower is simpler.
"""

from __future__ import annotations

import numpy as np

from xai_core import hookimpl
from xai_core.errors import XaiError
from xai_core.metric import Metric, MetricContext, MetricResult
from xai_core_metrics.common import flat


def magnitudes(context: MetricContext, metric: str) -> np.ndarray:
    """|a| / max |a| per sample (rows of zeros stay zeros), flattened."""
    if context.attributions is None:
        raise XaiError(
            f"metric {metric!r} scores attributions, and the {context.method!r} explanation "
            "has none (capture-only method)."
        )
    a = np.abs(flat(context.attributions))
    top = a.max(axis=1, keepdims=True)
    return np.divide(a, top, out=np.zeros_like(a), where=top > 0)


class Sparseness(Metric):
    name = "sparseness"
    higher_is_better = True

    def score(self, context: MetricContext) -> MetricResult:
        a = np.sort(magnitudes(context, self.name) + 1e-7, axis=1)
        d = a.shape[1]
        weights = 2 * np.arange(1, d + 1) - d - 1
        return MetricResult((weights * a).sum(axis=1) / (d * a.sum(axis=1)))


class Complexity(Metric):
    name = "complexity"
    higher_is_better = False

    def score(self, context: MetricContext) -> MetricResult:
        a = magnitudes(context, self.name)
        total = a.sum(axis=1, keepdims=True)
        p = np.divide(a, total, out=np.zeros_like(a), where=total > 0)
        return MetricResult(-(p * np.log(p + 1e-12)).sum(axis=1))


@hookimpl
def xai_metrics() -> list[type[Metric]]:
    return [Sparseness, Complexity]
