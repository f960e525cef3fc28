"""Faithfulness: do the features an explanation ranks high move the model's output?

- `infidelity` (Yeh et al. 2019), Captum's definition: E[(I . a - (f(x) - f(x - I)))^2]
  over perturbations I; lower is better.
- `deletion` / `insertion` (Petsiuk et al. 2018): the target output as the most
  important features are replaced by a baseline (or inserted into it), and the
  area under that curve; deletion's curve is Quantus `PixelFlipping`'s.
- `faithfulness_correlation` (Bhatt et al. 2020), Quantus's definition: the Pearson
  (or Spearman, Kendall: `similarity=`) correlation, over random feature subsets, of the
  attributions' sum and the output drop when the subset is replaced.
- `completeness`: |sum(a) - (f(x) - f(baseline))|, relative to |f(x) - f(baseline)|.

Every perturbed copy goes to the model through the core's chunks, all samples and
draws together.
"""

from __future__ import annotations

import math

import numpy as np

from xai_core import hookimpl
from xai_core.errors import OptionError
from xai_core.explainer import (
    check_bool,
    check_choice,
    check_held,
    check_number,
    check_positive_int,
    legacy_seed,
    resolve_seed,
)
from xai_core.metric import Metric, MetricContext, MetricResult, capability_error
from xai_core.validation import broadcast_baselines, check_background
from xai_core_metrics.common import CORRELATIONS, check_perturbations, flat


class Infidelity(Metric):
    """Captum's `infidelity`: I ~ N(0, noise_scale^2) per element, drawn for draw j from
    `numpy.random.default_rng([seed, j])` as `normal(0, noise_scale, shape)` (the inputs'
    shape, channels first) cast to the inputs' dtype, or given whole as `perturbations`
    (draws, samples, ...) in the inputs' layout."""

    name = "infidelity"
    higher_is_better = False
    requires = ("forward",)
    per_input_options = {"perturbations": "draws"}
    defaults = {
        "n_perturb_samples": 10,
        "noise_scale": 0.1,
        "normalize": False,
        "perturbations": None,
        "seed": None,
    }

    def validate(self) -> None:
        check_positive_int("n_perturb_samples", self.options["n_perturb_samples"])
        check_number("noise_scale", self.options["noise_scale"])
        check_bool("normalize", self.options["normalize"])

    def score(self, context: MetricContext) -> MetricResult:
        x = context.float_inputs()
        # float32 products as Captum (a float64 copy of every draw costs more than the model)
        a = flat(context.input_attributions()).astype(x.dtype)
        seed = resolve_seed(self.options["seed"])
        shape = (len(x), *context.canonical_shape)
        given = self.options["perturbations"]
        given = None if given is None else check_perturbations(given, x)
        k = len(given) if given is not None else self.options["n_perturb_samples"]
        scale = self.options["noise_scale"]

        def draw(j: int) -> np.ndarray:
            if given is not None:
                return given[j]
            noise = np.random.default_rng([seed, j]).normal(0.0, scale, shape)
            return context.from_canonical(noise).astype(x.dtype)

        check_held("n_perturb_samples", k, 16 * len(x), "the perturbation products")
        dots = np.empty((k, len(x)), np.float64)

        def perturbed(start: int, stop: int) -> np.ndarray:
            noise = (
                given[start:stop]
                if given is not None
                else np.stack([draw(j) for j in range(start, stop)])
            )
            dots[start:stop] = np.einsum(
                "knd,nd->kn", noise.reshape(len(noise), len(x), a.shape[1]), a
            )
            return x[None] - noise

        # f(x) from the explanation, checked on one sample: only the copies run
        f_x, outputs = context.explained_and_blocks(k, perturbed)
        diffs = f_x[None] - outputs
        if self.options["normalize"]:  # Captum: the best scaling beta of the attributions
            aa, ab, bb = (dots * dots).sum(0), (dots * diffs).sum(0), (diffs * diffs).sum(0)
            beta = ab / np.where(aa == 0, 1.0, aa)
            scores = (beta * beta * aa - 2 * beta * ab + bb) / k
        else:
            scores = ((dots - diffs) ** 2).sum(0) / k
        return MetricResult(scores, options={"seed": seed, "n_perturb_samples": k})


def trapezoid(curves: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Area under each row of `curves` over `x` (the trapezoidal rule)."""
    return ((curves[:, 1:] + curves[:, :-1]) / 2 * np.diff(x)[None]).sum(axis=1)


def replacing(context: MetricContext, baseline: object) -> tuple[np.ndarray, ...]:
    """(inputs, flat attributions, baseline) in channels-first layout, for metrics that
    replace features by a baseline in attribution order or at random."""
    x = context.to_canonical(context.inputs)
    a = flat(context.to_canonical(context.input_attributions()))
    return x, a, context.to_canonical(broadcast_baselines(baseline, context.inputs))


class _Curve(Metric):
    """Deletion and insertion: features in order of decreasing attribution, `steps` at a
    time (ceil(d / steps) features per step, as Quantus's `features_in_step`)."""

    higher_is_better = False
    requires = ("forward",)
    defaults = {"steps": 100, "baseline": 0.0, "softmax": False, "seed": None}
    inserting = False

    def validate(self) -> None:
        check_positive_int("steps", self.options["steps"])
        check_bool("softmax", self.options["softmax"])
        baseline = self.options["baseline"]
        if isinstance(baseline, str):
            if self.inserting:
                raise OptionError(
                    f"insertion takes a number or an array as baseline, got {baseline!r} "
                    "(baselines that change at each step are deletion's, as Quantus's "
                    "PixelFlipping)."
                )
            check_choice("baseline", baseline, list(STEP_BASELINES))

    def score(self, context: MetricContext) -> MetricResult:
        given = self.options["baseline"]
        x, a, baseline = replacing(context, 0.0 if isinstance(given, str) else given)
        n, d = a.shape
        per_step = math.ceil(d / min(self.options["steps"], d))
        counts = np.minimum(np.arange(math.ceil(d / per_step) + 1) * per_step, d)
        order = np.argsort(-a, axis=1)  # Quantus's order, ties included
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(d)[None].repeat(n, 0), axis=1)
        start_from, put_in = (baseline, x) if self.inserting else (x, baseline)
        seed = resolve_seed(self.options["seed"]) if isinstance(given, str) else None

        def perturbed(start: int, stop: int) -> np.ndarray:
            if isinstance(given, str):
                return context.from_canonical(stepwise(start, stop), 2)
            chosen = (rank[None] < counts[start:stop, None, None]).reshape(stop - start, *x.shape)
            return context.from_canonical(np.where(chosen, put_in[None], start_from[None]), 2)

        state = {"step": 0, "current": x.reshape(n, -1).copy()}

        def stepwise(start: int, stop: int) -> np.ndarray:
            """Steps start..stop-1 of a baseline computed from the array as it is at each
            step (Quantus: "mean", "black", "white" of the partly flipped sample; "uniform"
            one draw per sample and step), so built in order, one step after another."""
            blocks = []
            for k in range(start, stop):
                if k < state["step"]:  # an earlier step asked again: replay from x
                    state["step"], state["current"] = 0, x.reshape(n, -1).copy()
                while state["step"] < k:
                    step = state["step"]
                    value = STEP_BASELINES[given](state["current"], seed, step)
                    flipped = (rank >= counts[step]) & (rank < counts[step + 1])
                    state["current"] = np.where(flipped, value[:, None], state["current"])
                    state["step"] += 1
                blocks.append(state["current"].reshape(x.shape).astype(x.dtype))
            return np.stack(blocks)

        curves = context.target_outputs_of_blocks(len(counts), perturbed, self.options["softmax"]).T
        fractions = counts / d
        return MetricResult(
            trapezoid(curves, fractions),
            curves=curves,
            curve_x=fractions,
            x_label="fraction of features " + ("inserted" if self.inserting else "removed"),
            y_label="target output" + (" (softmax)" if self.options["softmax"] else ""),
            options={} if seed is None else {"seed": seed},
        )


#: deletion baselines that change at each step, as Quantus's string `perturb_baseline`s:
#: one value per sample from the partly flipped rows (n, d); "uniform" is draw
#: `default_rng([seed, step]).uniform(0, 1, n)`
STEP_BASELINES = {
    "mean": lambda rows, seed, step: rows.mean(axis=1),
    "black": lambda rows, seed, step: rows.min(axis=1),
    "white": lambda rows, seed, step: rows.max(axis=1),
    "uniform": lambda rows, seed, step: np.random.default_rng([seed, step]).uniform(
        0.0, 1.0, len(rows)
    ),
}


class Deletion(_Curve):
    """Area under the target output as the most important features are replaced by
    `baseline`; a faithful explanation makes it fall fast (lower is better)."""

    name = "deletion"


class Insertion(_Curve):
    """Area under the target output as the most important features are put back into
    `baseline`; a faithful explanation makes it rise fast (higher is better)."""

    name = "insertion"
    higher_is_better = True
    inserting = True


class FaithfulnessCorrelation(Metric):
    """Quantus's `FaithfulnessCorrelation`. The subsets are NumPy's legacy draws
    `RandomState(seed).choice(d, subset_size, replace=False)`, run by run and sample by
    sample, which is the order Quantus draws them from the global generator: Quantus
    after `np.random.seed(seed)` gets the same subsets (and the same scores)."""

    name = "faithfulness_correlation"
    higher_is_better = True
    requires = ("forward",)
    defaults = {
        "n_runs": 100,
        "subset_size": 224,
        "baseline": 0.0,
        "softmax": False,
        "seed": None,
        "similarity": "pearson",
    }

    def validate(self) -> None:
        check_choice("similarity", self.options["similarity"], list(CORRELATIONS))
        check_positive_int("n_runs", self.options["n_runs"], 2)
        check_positive_int("subset_size", self.options["subset_size"])
        check_bool("softmax", self.options["softmax"])

    def score(self, context: MetricContext) -> MetricResult:
        x, a, baseline = replacing(context, self.options["baseline"])
        n, d = a.shape
        size, runs = self.options["subset_size"], self.options["n_runs"]
        if size >= d:  # every feature in every subset: the sums never vary (NaN correlation)
            raise OptionError(
                f"subset_size={size} leaves nothing to vary: a sample has {d} features, and "
                f"subsets of all of them give one sum and one drop (a NaN correlation); pass "
                f"subset_size < {d}, as Quantus requires (its default 224 suits 224 x 224 "
                "images)."
            )
        seed = resolve_seed(self.options["seed"])
        draws = np.random.RandomState(legacy_seed(seed))
        subsets = np.array(
            [[draws.choice(d, size, replace=False) for _ in range(n)] for _ in range(runs)]
        )  # (runs, n, size)
        softmax = self.options["softmax"]

        def perturbed(start: int, stop: int) -> np.ndarray:
            mask = np.zeros((stop - start, n, d), bool)
            np.put_along_axis(mask, subsets[start:stop], True, axis=2)
            blocks = np.where(mask.reshape(stop - start, *x.shape), baseline[None], x[None])
            return context.from_canonical(blocks, 2)

        f_x, outputs = context.explained_and_blocks(runs, perturbed, softmax)
        drops = f_x[None] - outputs
        sums = np.take_along_axis(a[None], subsets, axis=2).sum(axis=2)  # (runs, n)
        similarity = CORRELATIONS[self.options["similarity"]]
        return MetricResult(similarity(sums.T, drops.T), options={"seed": seed})


class Completeness(Metric):
    """|sum(attributions) - (f(x) - f(reference))|, divided by |f(x) - f(reference)| when
    `relative` (0/0 counts as 0). The reference is the method's `baselines`, or the mean
    output over its `background` (SHAP methods)."""

    name = "completeness"
    higher_is_better = False
    requires = ("forward", "baseline")
    defaults = {"relative": True}

    def validate(self) -> None:
        check_bool("relative", self.options["relative"])

    def score(self, context: MetricContext) -> MetricResult:
        x = context.inputs
        sums = flat(context.input_attributions()).sum(axis=1)
        options = context.explanation.options
        if "baselines" in options:
            reference = context.target_outputs(broadcast_baselines(options["baselines"], x))
        elif options.get("background") is not None:
            background = check_background(options["background"], x, context.method)
            outputs = context.model.forward(background).mean(axis=0)
            reference = outputs[context.target].astype(np.float64)
        else:
            raise capability_error(
                self.name,
                context.method,
                "a method with a baseline (f(x) - f(baseline) is what it checks)",
                "evaluate integrated_gradients, gradient_shap, deep_shap, kernel_shap, "
                "occlusion or feature_ablation",
            )
        change = context.explained_outputs() - reference
        gap = np.abs(sums - change)
        if self.options["relative"]:
            scale = np.abs(change)
            gap = np.divide(gap, scale, out=np.where(gap == 0, 0.0, np.inf), where=scale > 0)
        return MetricResult(gap)


@hookimpl
def xai_metrics() -> list[type[Metric]]:
    return [Infidelity, Deletion, Insertion, FaithfulnessCorrelation, Completeness]
