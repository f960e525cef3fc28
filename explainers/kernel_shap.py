"""Kernel SHAP (and shap's Permutation and Partition explainers) over `adapter.forward`.

The algorithms are the `shap` library's; this module feeds them the model as one
batched predict function (the core cuts `internal_batch_size` chunks), picks each
sample's target output, and reports additivity: `convergence_delta` is
sum(attributions) + base value - f(x) per sample. Works on any backend, a
forward-only one included.

Backgrounds larger than `max_background` rows are summarised with `shap.kmeans`
(weighted centroids) for the Kernel algorithm, as shap recommends, and sampled
(with the seed) for the others; the choice is recorded in the options.
"""

from __future__ import annotations

import warnings

import numpy as np

from xai_core import Attribution, BatchedModel, Explainer, hookimpl
from xai_core.errors import OptionError
from xai_core.explainer import (
    check_choice,
    check_feature_names,
    check_positive_int,
    legacy_seed,
    resolve_seed,
)
from xai_core.validation import check_background
from xai_core_explainers.perturbation import feature_groups
from xai_core_explainers.shap_support import (
    additivity_gap,
    flat_predict,
    require,
    seeded_global_numpy,
)

ALGORITHMS = ("kernel", "permutation", "partition")


class KernelShap(Explainer):
    name = "kernel_shap"
    defaults = {
        "background": None,
        "n_samples": None,  # shap's "auto" for kernel (2 * features + 2048), 500 evals otherwise
        "seed": None,
        "feature_names": None,
        "algorithm": "kernel",
        "max_background": 100,
        "feature_mask": None,
    }
    per_input_options = {"feature_mask": "mask", "feature_names": "names"}
    aggregate_mode = True

    def validate(self) -> None:
        check_choice("algorithm", self.options["algorithm"], ALGORITHMS)
        check_positive_int("max_background", self.options["max_background"])
        if self.options["n_samples"] is not None:
            check_positive_int("n_samples", self.options["n_samples"])
        if self.options["seed"] is not None:
            resolve_seed(self.options["seed"])
        if self.options["background"] is None:
            check_background(None, np.zeros((1, 1)), self.name)  # raises, saying what to pass

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> Attribution:
        if model.aggregate:
            return self._batch_value_shap(model, inputs)
        if self.options["feature_mask"] is not None:
            return self._grouped(model, inputs, target)
        shap = require("shap", "shap")
        seed = resolve_seed(self.options["seed"])
        background = check_background(self.options["background"], inputs, self.name, np.float64)
        n, sample_shape = len(inputs), inputs.shape[1:]
        check_feature_names(self.options["feature_names"], int(np.prod(sample_shape)))
        flat_bg = background.reshape(len(background), -1)
        if len(flat_bg) == 1 and self.options["algorithm"] == "partition":
            # shap's Partition masker clusters the background and needs two rows; two
            # identical rows give the same, exact, single-baseline answer
            flat_bg = np.repeat(flat_bg, 2, axis=0)
        rows = inputs.reshape(n, -1).astype(np.float64)
        predict = flat_predict(model, sample_shape, inputs.dtype)
        algorithm, limit = self.options["algorithm"], self.options["max_background"]
        summary = "all rows"
        if len(flat_bg) > limit and algorithm != "kernel":
            pick = np.random.default_rng(seed).choice(len(flat_bg), limit, replace=False)
            flat_bg, summary = flat_bg[pick], f"{limit} sampled rows"
        elif len(flat_bg) > limit:
            summary = f"shap.kmeans({limit})"

        def shap_values(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if algorithm == "kernel":
                data = shap.kmeans(flat_bg, limit) if len(flat_bg) > limit else flat_bg
                explainer = shap.KernelExplainer(predict, data)
                n_samples = self.options["n_samples"] or "auto"
                values = np.asarray(explainer.shap_values(batch, nsamples=n_samples, silent=True))
                base = np.broadcast_to(
                    np.asarray(explainer.expected_value), (len(batch), values.shape[-1])
                )
                return values, base
            masker = (
                shap.maskers.Independent(flat_bg, max_samples=len(flat_bg))
                if algorithm == "permutation"
                else shap.maskers.Partition(flat_bg, max_samples=len(flat_bg))
            )
            if algorithm == "permutation":
                explainer = shap.PermutationExplainer(predict, masker, seed=legacy_seed(seed))
            else:
                explainer = shap.PartitionExplainer(predict, masker)
            result = explainer(batch, max_evals=self.options["n_samples"] or 500, silent=True)
            return np.asarray(result.values), np.asarray(result.base_values)

        with seeded_global_numpy(seed), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not model.batch_kwargs:
                values, base = shap_values(rows)
            else:  # each sample's perturbations carry that sample's forward_kwargs
                parts = []
                for i in range(n):
                    with model.for_sample(i):
                        parts.append(shap_values(rows[i : i + 1]))
                values = np.concatenate([v for v, _ in parts])
                base = np.concatenate([np.asarray(b).reshape(1, -1) for _, b in parts])
        if values.ndim == 2:  # one output
            values, base = values[..., None], np.asarray(base).reshape(n, 1)
        picked = values[np.arange(n), :, target]
        base_values = np.asarray(base, np.float64)[np.arange(n), target]
        outputs = model.forward(inputs)[np.arange(n), target].astype(np.float64)
        return Attribution(
            attributions=picked.reshape(inputs.shape).astype(np.float64),
            convergence_delta=additivity_gap(picked, base_values, outputs),
            extras={"base_values": base_values},
            options={"seed": seed, "background_summary": summary},
        )

    def _batch_value_shap(self, model: BatchedModel, inputs: np.ndarray) -> Attribution:
        """SHAP values of a model returning one value for the whole batch (Captum's
        aggregation mode): a feature (group) is present or absent in every sample at once,
        absent taking a background row's values, averaged over the background; shap's
        Kernel algorithm on that game. Every sample's row gets the same values."""
        if self.options["algorithm"] != "kernel":
            raise OptionError(
                "a model returning one value for the whole batch (aggregation mode) is "
                f"explained with shap's Kernel algorithm; pass algorithm='kernel', not "
                f"{self.options['algorithm']!r}."
            )
        shap = require("shap", "shap")
        seed = resolve_seed(self.options["seed"])
        background = check_background(self.options["background"], inputs, self.name)
        ids, groups = feature_groups(self.options["feature_mask"], inputs.shape[1:])
        element_group = np.searchsorted(groups, ids)
        g = len(groups)

        def predict(z: np.ndarray) -> np.ndarray:
            values = np.empty((len(z), 1))
            for k, row in enumerate(np.asarray(z) > 0.5):
                present = row[element_group][None]
                values[k] = np.mean(
                    [model.batch_value(np.where(present, inputs, b[None])) for b in background]
                )
            return values

        with seeded_global_numpy(seed), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            explainer = shap.KernelExplainer(predict, np.zeros((1, g)))
            values = np.asarray(
                explainer.shap_values(
                    np.ones((1, g)), nsamples=self.options["n_samples"] or "auto", silent=True
                )
            ).reshape(g)
            base = float(np.atleast_1d(np.asarray(explainer.expected_value))[0])
        row = values[element_group]
        gap = values.sum() + base - model.batch_value(inputs)
        return Attribution(
            attributions=np.broadcast_to(row, inputs.shape).astype(np.float64),
            convergence_delta=np.full(len(inputs), gap),
            extras={"base_values": np.full(len(inputs), base)},
            options={"seed": seed},
        )

    def _grouped(self, model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> Attribution:
        """SHAP values of feature groups (superpixels, one-hot blocks): a group is present
        with the sample's values or absent with a background row's, averaged over the
        background; every element gets its group's value (Captum's convention). The
        base value is f averaged over the background; groups sum to f(x) minus it."""
        shap = require("shap", "shap")
        seed = resolve_seed(self.options["seed"])
        background = check_background(self.options["background"], inputs, self.name)
        limit = self.options["max_background"]
        if len(background) > limit:
            pick = np.random.default_rng(seed).choice(len(background), limit, replace=False)
            background = background[pick]
        n = len(inputs)
        ids, _ = feature_groups(self.options["feature_mask"], inputs.shape[1:], n)
        per_sample = ids.ndim == inputs.ndim  # one mask row per sample (Captum's convention)
        attributions = np.zeros(inputs.shape, np.float64)
        group_values: list[np.ndarray] = []
        base = np.zeros(n)
        for i in range(n):
            groups = np.unique(ids[i] if per_sample else ids)
            # group position of every element of this sample
            element_group = np.searchsorted(groups, ids[i] if per_sample else ids)
            g = len(groups)

            def predict(z: np.ndarray, i: int = i, element_group=element_group) -> np.ndarray:
                present = np.asarray(z)[:, element_group] > 0.5  # (m, *sample)
                rows = np.where(present[:, None], inputs[i][None, None], background[None])
                out = model.forward(rows.reshape(-1, *inputs.shape[1:]).astype(inputs.dtype))
                return out.reshape(len(z), len(background), -1).mean(axis=1).astype(np.float64)

            with model.for_sample(i), seeded_global_numpy(seed), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if self.options["algorithm"] == "kernel":
                    explainer = shap.KernelExplainer(predict, np.zeros((1, g)))
                    sv = np.asarray(
                        explainer.shap_values(
                            np.ones((1, g)),
                            nsamples=self.options["n_samples"] or "auto",
                            silent=True,
                        )
                    )
                    expected = np.atleast_1d(np.asarray(explainer.expected_value))
                else:
                    masker = shap.maskers.Independent(np.zeros((1, g)))
                    if self.options["algorithm"] == "permutation":
                        explainer = shap.PermutationExplainer(
                            predict, masker, seed=legacy_seed(seed)
                        )
                    else:
                        explainer = shap.PartitionExplainer(
                            predict, shap.maskers.Partition(np.zeros((2, g)))
                        )
                    result = explainer(
                        np.ones((1, g)), max_evals=self.options["n_samples"] or 500, silent=True
                    )
                    sv, expected = np.asarray(result.values), np.asarray(result.base_values)[0]
            sv = sv.reshape(1, g, -1)
            group_values.append(sv[0, :, target[i]])
            attributions[i] = group_values[-1][element_group]
            base[i] = np.atleast_1d(expected)[target[i] if np.size(expected) > 1 else 0]
        outputs = model.forward(inputs)[np.arange(n), target].astype(np.float64)
        sums = np.array([v.sum() for v in group_values])[:, None]
        extras = {"base_values": base}
        if len({len(v) for v in group_values}) == 1:  # (N, groups) when the groups agree
            extras["group_values"] = np.stack(group_values)
        return Attribution(
            attributions=attributions,
            convergence_delta=additivity_gap(sums, base, outputs),
            extras=extras,
            options={"seed": seed},
        )


@hookimpl
def xai_explainers() -> list[type[Explainer]]:
    return [KernelShap]
