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
from xai_core.explainer import (
    check_bool,
    check_choice,
    check_number,
    check_positive_int,
    legacy_seed,
    resolve_seed,
)
from xai_core.metric import Metric, MetricContext, MetricResult
from xai_core_metrics.common import CORRELATIONS, flat

SIMILARITIES = CORRELATIONS
#: Quantus MPRT's layer orders, and what the curve's x axis counts
ORDERS = {
    "top_down": "layers randomised, from the top",
    "bottom_up": "layers randomised, from the bottom",
    "independent": "the one layer randomised",
}


class _Randomised(Metric):
    """What the randomisation metrics share: the explanation's attributions, prepared
    as Quantus prepares them (`abs`), and the layers to re-draw."""

    higher_is_better = False
    requires = ("forward", "explain", "randomized")

    def validate(self) -> None:
        check_bool("abs", self.options["abs"])
        if "similarity" in self.options:
            check_choice("similarity", self.options["similarity"], list(SIMILARITIES))
        if "layer_order" in self.options:
            check_choice("layer_order", self.options["layer_order"], list(ORDERS))
        layers = self.options.get("layers")
        if layers is not None and (
            isinstance(layers, str) or not all(isinstance(n, str) for n in layers) or not layers
        ):
            raise OptionError(
                f"layers must be a list of layer names, or None for every layer with "
                f"parameters; got {layers!r:.60}."
            )

    def prepared(self, a: np.ndarray) -> np.ndarray:
        a = flat(a)
        return np.abs(a) if self.options["abs"] else a

    def attributions(self, context: MetricContext) -> np.ndarray:
        if context.attributions is None:
            raise OptionError(
                f"{self.name} compares attributions, and {context.method!r} has none."
            )
        return context.attributions

    def layers(self, context: MetricContext) -> list[str]:
        layers = list(self.options.get("layers") or context.parameter_layers())
        if self.options.get("layers") is not None:
            context.adapter.check_layers(layers)
        return layers


class ModelRandomization(_Randomised):
    name = "model_randomization"
    defaults = {
        "similarity": "spearman",
        "abs": True,
        "layers": None,
        "seed": None,
        "layer_order": "top_down",
    }

    def score(self, context: MetricContext) -> MetricResult:
        original = self.prepared(self.attributions(context))
        seed = resolve_seed(self.options["seed"])
        similarity = SIMILARITIES[self.options["similarity"]]
        steps, names = [], []
        order = self.options["layer_order"]
        for layer, randomized in context.randomized_cascade(self.layers(context), seed, order):
            moved = context.reexplain(context.inputs[None], adapter=randomized)[0]
            steps.append(similarity(original, self.prepared(moved)))
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


class SmoothModelRandomization(_Randomised):
    """Quantus's `SmoothMPRT` (Hedström et al. 2024): MPRT with each model's explanation
    averaged over `n_samples` noisy copies of the input (noise std `noise_magnitude` x
    the sample's value range; the last copy noiseless, as Quantus), so that the noise of
    gradient explanations does not pass for sensitivity to the weights. Compared with the
    explanation's own attributions by `similarity`; the curve's first point is the
    smoothed original model. Noise draw j (j < n_samples - 1) is
    `default_rng([seed, j]).standard_normal(inputs' shape, channels first)` x std, the
    same draws for every model."""

    name = "smooth_model_randomization"
    defaults = {
        "similarity": "spearman",
        "abs": True,
        "layers": None,
        "seed": None,
        "layer_order": "bottom_up",
        "n_samples": 50,
        "noise_magnitude": 0.1,
    }

    def validate(self) -> None:
        super().validate()
        check_positive_int("n_samples", self.options["n_samples"])
        check_number("noise_magnitude", self.options["noise_magnitude"])

    def score(self, context: MetricContext) -> MetricResult:
        original = self.prepared(self.attributions(context))
        seed = resolve_seed(self.options["seed"])
        x = context.float_inputs()
        canonical = context.to_canonical(x).astype(np.float64)
        axes = tuple(range(1, canonical.ndim))
        std = self.options["noise_magnitude"] * (
            canonical.max(axis=axes, keepdims=True) - canonical.min(axis=axes, keepdims=True)
        )
        k = self.options["n_samples"]
        noise = [
            np.random.default_rng([seed, j]).standard_normal(canonical.shape) * std
            for j in range(k - 1)
        ]
        blocks = np.stack([*(canonical + e for e in noise), canonical])
        blocks = context.from_canonical(blocks, 2).astype(x.dtype)
        similarity = SIMILARITIES[self.options["similarity"]]

        def smoothed(adapter: object | None) -> np.ndarray:
            return context.reexplain(blocks, adapter=adapter).mean(axis=0)

        steps = [similarity(original, self.prepared(smoothed(None)))]
        names = ["original"]
        order = self.options["layer_order"]
        for layer, randomized in context.randomized_cascade(self.layers(context), seed, order):
            steps.append(similarity(original, self.prepared(smoothed(randomized))))
            names.append(layer)
        curves = np.stack(steps, axis=1)
        return MetricResult(
            np.nanmean(curves[:, 1:], axis=1),
            curves=curves,
            curve_x=np.arange(len(names)),
            curve_labels=names,
            x_label=ORDERS[order] + " (0: none)",
            y_label=f"{self.options['similarity']} similarity (smoothed)",
            options={"seed": seed},
        )


def histogram_entropy(rows: np.ndarray, n_bins: int) -> np.ndarray:
    """The entropy of each row's histogram in `n_bins` bins over its own range (Quantus's
    `discrete_entropy`: numpy's histogram, scipy's entropy of the counts)."""
    out = np.empty(len(rows))
    for i, row in enumerate(rows):
        counts, _ = np.histogram(row, bins=n_bins)
        p = counts[counts > 0] / counts.sum()
        out[i] = -(p * np.log(p)).sum()
    return out


class EfficientModelRandomization(_Randomised):
    """Quantus's `EfficientMPRT` (eMPRT, Hedström et al. 2024): how much more complex the
    explanation becomes once every layer is randomised, (H(a_random) - H(a)) / H(a), H
    the entropy of the attributions' histogram in `n_bins` bins. An explanation that
    follows the weights turns to noise (a positive score; higher is better). One
    randomised model, not a cascade: the cost of one explanation. A constant explanation
    (entropy 0: nothing to rise from) scores NaN, where Quantus divides by zero."""

    name = "efficient_model_randomization"
    higher_is_better = True
    defaults = {"abs": False, "layers": None, "seed": None, "n_bins": 100}

    def validate(self) -> None:
        super().validate()
        check_positive_int("n_bins", self.options["n_bins"])

    def score(self, context: MetricContext) -> MetricResult:
        original = self.prepared(self.attributions(context))
        seed = resolve_seed(self.options["seed"])
        # the cascade's last copy has every layer re-drawn
        *_, (_, randomized) = context.randomized_cascade(self.layers(context), seed)
        moved = self.prepared(context.reexplain(context.inputs[None], adapter=randomized)[0])
        n_bins = self.options["n_bins"]
        before, after = histogram_entropy(original, n_bins), histogram_entropy(moved, n_bins)
        # a constant explanation (one histogram bin, entropy 0) has no relative rise: NaN
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = np.where(before > 0, (after - before) / before, np.nan)
        return MetricResult(scores, options={"seed": seed})


class RandomLogit(Metric):
    """Quantus's `RandomLogit` (Sixt et al. 2020): the similarity of the explanation of
    the target with that of another class drawn at random; an explanation that does not
    depend on the class explained scores near 1 (lower is better). The other class of
    sample i is the `k_i`-th of the classes other than its target, `k =
    RandomState(seed).randint(0, n_classes - 1, n)`, Quantus's draw after
    `np.random.seed(seed)`. Similarity "ssim" (Quantus's default, scikit-image's
    structural similarity of the flattened maps) or a correlation. Both maps are
    divided by their largest |a| when `normalise` (per sample; Quantus per batch)."""

    name = "random_logit"
    higher_is_better = False
    requires = ("forward", "explain")
    defaults = {"similarity": "ssim", "seed": None, "normalise": True, "abs": False}

    def validate(self) -> None:
        check_choice("similarity", self.options["similarity"], ["ssim", *SIMILARITIES])
        check_bool("normalise", self.options["normalise"])
        check_bool("abs", self.options["abs"])

    def score(self, context: MetricContext) -> MetricResult:
        if context.attributions is None:
            raise OptionError(
                f"random_logit compares attributions, and {context.method!r} has none."
            )
        n_classes = int(np.prod(context._output_shape()))
        if n_classes < 2:
            raise OptionError(
                "random_logit explains another class than the target, and the model has one "
                "output: score a classifier with two or more outputs."
            )
        seed = resolve_seed(self.options["seed"])
        n = len(context.inputs)
        picks = np.random.RandomState(legacy_seed(seed)).randint(0, n_classes - 1, n)
        target = np.asarray(context.target).reshape(n)
        others = np.where(picks >= target, picks + 1, picks)  # the picks-th class but target
        moved = context.reexplain(context.inputs[None], target=others)[0]
        # channels first before flattening: SSIM's windows see the neighbours they see on
        # a PyTorch twin (correlations do not care about the order)
        a = self.prepared(context.to_canonical(np.asarray(context.attributions)))
        b = self.prepared(context.to_canonical(moved))
        if self.options["similarity"] == "ssim":
            scores = ssim_rows(a, b)
        else:
            scores = SIMILARITIES[self.options["similarity"]](a, b)
        return MetricResult(scores, options={"seed": seed, "other_classes": others.tolist()})

    def prepared(self, a: np.ndarray) -> np.ndarray:
        a = flat(a)
        if self.options["normalise"]:
            top = np.abs(a).max(axis=1, keepdims=True)
            a = np.divide(a, top, out=np.zeros_like(a), where=top > 0)
        return np.abs(a) if self.options["abs"] else a


def ssim_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """scikit-image's structural similarity of each pair of flattened maps, over the
    pair's joint value range (Quantus's `ssim`); NaN for two maps of one constant."""
    try:
        from skimage.metrics import structural_similarity  # comes with lime
    except ImportError:
        raise OptionError(
            "similarity='ssim' needs scikit-image: pip install scikit-image (or pass "
            "similarity='spearman')."
        ) from None
    out = np.empty(len(a))
    for i, (x, y) in enumerate(zip(a, b)):
        both = np.concatenate([x, y])
        value_range = float(np.abs(both.max() - both.min()))
        # two maps of one and the same constant have no structure to compare: NaN
        out[i] = structural_similarity(x, y, data_range=value_range) if value_range else np.nan
    return out


@hookimpl
def xai_metrics() -> list[type[Metric]]:
    return [
        ModelRandomization,
        SmoothModelRandomization,
        EfficientModelRandomization,
        RandomLogit,
    ]
