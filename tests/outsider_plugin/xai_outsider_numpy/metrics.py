"""A third-party metric, written only against xai_core's public API."""

from __future__ import annotations

import numpy as np

import xai_core


class TopShare(xai_core.Metric):
    """The share of the total |attribution| held by the `k` largest features."""

    name = "top_share"
    higher_is_better = True
    defaults = {"k": 1}

    def score(self, context: xai_core.MetricContext) -> xai_core.MetricResult:
        a = np.abs(context.input_attributions()).reshape(len(context.inputs), -1)
        top = -np.sort(-a, axis=1)[:, : self.options["k"]].sum(axis=1)
        return xai_core.MetricResult(top / a.sum(axis=1))


@xai_core.hookimpl
def xai_metrics():
    return [TopShare]
