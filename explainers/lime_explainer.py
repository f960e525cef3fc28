"""LIME (Ribeiro et al., 2016) through the `lime` library, for tabular data and images.

Tabular inputs (batch, features) use `LimeTabularExplainer` with `background` as
its training data; attributions hold one local-model weight per feature. Image
inputs (channels-first or -last, grayscale or RGB) use `LimeImageExplainer`:
segmentation needs an RGB channels-last image, so the image is converted for
segmentation only, and perturbed images are converted back to the model's
layout before the model sees them; each segment's weight is spread back over its
pixels (and channels), in the input's layout. The perturbed images are built
vectorised (lime's own loop masks them one by one, segment by segment) from the
same random draws as lime's `data_labels`, and the model is called in batches of
`batch_size` (the library's default of 10 leaves most of the machine idle); the
weighted regression is lime's `LimeBase`. Same seed, same explanation as
`LimeImageExplainer.explain_instance` (tested).

Small images (32 x 32 pixels or fewer) are cut into an 8 x 8 grid of square
patches (quickshift finds too few segments there); larger ones use lime's own
default, quickshift (kernel_size=4, max_dist=200, ratio=0.2), seeded with
`seed % 1000` (lime draws that seed from its random state; taking it from the
run's seed keeps the perturbations equal to lime's at `random_seed=seed % 1000`).
Pass `segmentation_fn` (image -> label map) to choose.

Token ids (integer inputs) are never sampled from a Gaussian (its samples cast to ids
are no tokens): each token is on (kept) or off (replaced by the baseline token,
`baselines`, e.g. the pad or [MASK] id), as LIME's text explainer removes words, with
the on/off regression used for `feature_mask` groups.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from xai_core import Attribution, BatchedModel, Explainer, hookimpl
from xai_core.errors import OptionError
from xai_core.explainer import (
    check_choice,
    check_feature_names,
    check_held,
    check_number,
    check_positive_int,
    legacy_seed,
    resolve_seed,
)
from xai_core.validation import broadcast_baselines, check_background
from xai_core_explainers.perturbation import feature_groups
from xai_core_explainers.shap_support import flat_predict, require

MODES = ("auto", "tabular", "image")


def grid_segments(image: np.ndarray, patch: int) -> np.ndarray:
    """Label map of square patches: a segmentation that works for tiny images."""
    h, w = image.shape[:2]
    rows, cols = np.arange(h) // patch, np.arange(w) // patch
    return rows[:, None] * (cols.max() + 1) + cols[None, :]


class Lime(Explainer):
    name = "lime"
    defaults = {
        "background": None,
        "n_samples": 1000,
        "seed": None,
        "feature_names": None,
        "categorical_features": None,
        "kernel_width": None,
        "mode": "auto",
        "segmentation_fn": None,
        "batch_size": 1000,
        "feature_mask": None,
        "baselines": 0.0,
        "model_regressor": None,  # lime's Ridge(alpha=1); Captum's interpretable_model
    }
    per_input_options = {
        "feature_mask": "mask",
        "feature_names": "names",
        "categorical_features": "indices",
    }

    def validate(self) -> None:
        check_positive_int("n_samples", self.options["n_samples"])
        check_positive_int("batch_size", self.options["batch_size"])
        check_choice("mode", self.options["mode"], MODES)
        if self.options["seed"] is not None:
            resolve_seed(self.options["seed"])
        if self.options["kernel_width"] is not None:
            check_number("kernel_width", self.options["kernel_width"], minimum=1e-12)
        categorical = self.options["categorical_features"]
        if categorical is not None and (
            isinstance(categorical, str)
            or not hasattr(categorical, "__iter__")
            or not all(isinstance(c, (int, np.integer)) for c in categorical)
        ):
            raise OptionError(
                f"categorical_features must be a list of feature indices, got {categorical!r:.60}."
            )
        segmentation = self.options["segmentation_fn"]
        if segmentation is not None and not callable(segmentation):
            raise OptionError("segmentation_fn must be a function image -> label map, or None.")
        regressor = self.options["model_regressor"]
        if regressor is not None and not all(
            callable(getattr(regressor, m, None)) for m in ("fit", "score", "predict")
        ):
            raise OptionError(
                "model_regressor must be a scikit-learn regressor (fit with sample_weight, "
                "score, predict), e.g. sklearn.linear_model.LinearRegression(); None is lime's "
                f"Ridge(alpha=1). Got {type(regressor).__name__}."
            )

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> Attribution:
        seed = resolve_seed(self.options["seed"])
        mode = self.options["mode"]
        if mode == "auto":
            mode = "tabular" if inputs.ndim == 2 else "image"
        if mode == "tabular" and self.options["feature_mask"] is not None:
            ids, _ = feature_groups(self.options["feature_mask"], inputs.shape[1:], len(inputs))
            result = self._grouped(model, inputs, target, seed, ids)
        elif mode == "tabular" and model.integer_features is not None:  # token ids: on/off
            ids = np.arange(int(np.prod(inputs.shape[1:]))).reshape(inputs.shape[1:])
            result = self._grouped(model, inputs, target, seed, ids)
        elif mode == "tabular":
            if inputs.ndim != 2:
                raise OptionError(
                    f"tabular LIME needs (batch, features) inputs, got {inputs.shape}"
                )
            result = self._tabular(model, inputs, target, seed)
        else:
            result = self._image(model, inputs, target, seed)
        result.options.update({"seed": seed, "mode": mode})
        return result

    def _regressor(self) -> Any:
        """A fresh copy of the user's regressor for each fit: theirs is never refitted."""
        from sklearn.base import clone  # a dependency of lime

        given = self.options["model_regressor"]
        return None if given is None else clone(given)

    def _tabular(self, model, inputs, target, seed) -> Attribution:
        lime_tabular = require("lime.lime_tabular", "lime")
        background = check_background(
            self.options["background"], inputs, "tabular lime", np.float64
        )
        check_feature_names(self.options["feature_names"], inputs.shape[1])
        bad = [
            c for c in self.options["categorical_features"] or [] if not 0 <= c < inputs.shape[1]
        ]
        if bad:
            raise OptionError(
                f"categorical_features {bad} are out of range: the inputs have "
                f"{inputs.shape[1]} features (0..{inputs.shape[1] - 1})."
            )
        explainer = lime_tabular.LimeTabularExplainer(
            background,
            mode="classification",
            feature_names=self.options["feature_names"],
            categorical_features=self.options["categorical_features"],
            kernel_width=self.options["kernel_width"],
            discretize_continuous=False,
            random_state=legacy_seed(seed),
        )
        check_held(
            "n_samples", self.options["n_samples"], 32 * inputs.shape[1] + 64, "lime's samples"
        )
        predict = flat_predict(model, inputs.shape[1:], inputs.dtype)
        weights = np.zeros(inputs.shape, np.float64)
        intercepts = np.zeros(len(inputs))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scores need not be probabilities
            for i, (row, t) in enumerate(zip(inputs, target)):
                with model.for_sample(i):  # the perturbations carry this sample's kwargs
                    exp = explainer.explain_instance(
                        row.astype(np.float64),
                        predict,
                        labels=(int(t),),
                        num_features=inputs.shape[1],
                        num_samples=self.options["n_samples"],
                        model_regressor=self._regressor(),
                    )
                for feature, weight in exp.as_map()[int(t)]:
                    weights[i, feature] = weight
                intercepts[i] = exp.intercept[int(t)]
        return Attribution(attributions=weights, extras={"intercepts": intercepts})

    def _grouped(self, model, inputs, target, seed, ids) -> Attribution:
        """LIME over feature groups (`ids`, one group id per feature, or one row of ids per
        sample as Captum takes them): each group on (the
        sample's values) or off (the background's mean, or 0 without a background; the
        baseline token for integer ids), lime's `LimeBase` regression on the on/off rows
        with cosine distances, as lime does for superpixels; every element gets its
        group's weight."""
        lime_base = require("lime.lime_base", "lime")
        from sklearn.metrics import pairwise_distances  # a dependency of lime

        per_sample = ids.ndim == inputs.ndim
        background = self.options["background"]
        hide = (
            check_background(background, inputs, self.name).mean(axis=0)
            if background is not None
            else np.zeros(inputs.shape[1:], inputs.dtype)
        )
        integer = model.integer_features
        if integer is not None:  # ids are replaced by the baseline token, never averaged
            tokens = broadcast_baselines(self.options["baselines"], inputs[:1])[0]
            hide = np.where(integer.reshape(hide.shape), tokens, hide)
        kernel_width = self.options["kernel_width"] or 0.25  # lime image's default
        base = lime_base.LimeBase(
            lambda d: np.sqrt(np.exp(-(d**2) / kernel_width**2)),
            random_state=legacy_seed(seed),
        )
        random_state = np.random.RandomState(legacy_seed(seed))
        n_samples = self.options["n_samples"]
        most_groups = max(len(np.unique(row)) for row in (ids if per_sample else [ids]))
        row_bytes = int(np.prod(inputs.shape[1:])) * inputs.dtype.itemsize
        check_held("n_samples", n_samples, 9 * most_groups + row_bytes + 64, "the perturbed copies")
        attributions = np.zeros(inputs.shape, np.float64)
        intercepts = np.zeros(len(inputs))
        for i, t in enumerate(target):
            groups = np.unique(ids[i] if per_sample else ids)
            element_group = np.searchsorted(groups, ids[i] if per_sample else ids)
            g = len(groups)
            data = random_state.randint(0, 2, (n_samples, g))
            data[0, :] = 1
            present = data[:, element_group].astype(bool)
            rows = np.where(present, inputs[i][None], hide[None]).astype(inputs.dtype)
            with model.for_sample(i):
                labels = model.forward(rows).astype(np.float64)
            distances = pairwise_distances(data, data[:1], metric="cosine").ravel()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                intercept, local_exp, _, _ = base.explain_instance_with_data(
                    data,
                    labels,
                    distances,
                    int(t),
                    g,
                    feature_selection="auto",
                    model_regressor=self._regressor(),
                )
            weights = np.zeros(g)
            for group, weight in local_exp:
                weights[group] = weight
            attributions[i] = weights[element_group]
            intercepts[i] = intercept
        return Attribution(attributions=attributions, extras={"intercepts": intercepts})

    def _image(self, model, inputs, target, seed) -> Attribution:
        lime_image = require("lime.lime_image", "lime")
        from sklearn.metrics import pairwise_distances  # a dependency of lime

        if inputs.ndim not in (3, 4):
            raise OptionError(
                f"image LIME needs (N, C, H, W), (N, H, W, C) or (N, H, W), got {inputs.shape}"
            )
        layout = _ImageLayout(inputs.shape, model.channels_last)
        segmentation = self.options["segmentation_fn"]
        if self.options["feature_mask"] is not None:  # superpixels given: one id per pixel
            ids, _ = feature_groups(self.options["feature_mask"], inputs.shape[1:])
            spatial = layout.spatial_ids(ids)
            segments_given = np.unique(spatial, return_inverse=True)[1].reshape(spatial.shape)
            segmentation = lambda image: segments_given  # noqa: E731
        if segmentation is None:
            h, w = layout.spatial
            if h * w <= 32 * 32:
                patch = max(1, min(h, w) // 8)
                segmentation = lambda image: grid_segments(image, patch)  # noqa: E731
            else:
                from lime.wrappers.scikit_image import SegmentationAlgorithm

                segmentation = SegmentationAlgorithm(
                    "quickshift", kernel_size=4, max_dist=200, ratio=0.2, random_seed=seed % 1000
                )
        explainer = lime_image.LimeImageExplainer(random_state=legacy_seed(seed))
        attributions = np.zeros(inputs.shape, np.float64)
        intercepts = np.zeros(len(inputs))
        for i, t in enumerate(target):
            rgb = layout.to_rgb(inputs[i])
            segments = segmentation(rgb)
            with model.for_sample(i):
                data, labels = self._perturb(model, explainer, rgb, segments, layout, inputs.dtype)
            distances = pairwise_distances(data, data[:1], metric="cosine").ravel()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                intercept, local_exp, _, _ = explainer.base.explain_instance_with_data(
                    data,
                    labels,
                    distances,
                    int(t),
                    100_000,
                    feature_selection=explainer.feature_selection,
                    model_regressor=self._regressor(),
                )
            per_segment = np.zeros(segments.max() + 1)
            for segment, weight in local_exp:
                per_segment[segment] = weight
            attributions[i] = layout.spread(per_segment[segments])
            intercepts[i] = intercept
        return Attribution(attributions=attributions, extras={"intercepts": intercepts})

    def _perturb(self, model, explainer, rgb, segments, layout, dtype):
        """lime's `data_labels`, vectorised: the same random on/off rows from the same
        `RandomState` (so the same explanation as lime's own loop), segments switched
        off to the hide colour 0 in one array operation, the model called in batches."""
        n_samples, batch = self.options["n_samples"], self.options["batch_size"]
        n_segments = np.unique(segments).shape[0]
        check_held("n_samples", n_samples, 16 * n_segments + 64, "the on/off rows")
        data = explainer.random_state.randint(0, 2, n_samples * n_segments).reshape(
            (n_samples, n_segments)
        )
        data[0, :] = 1
        labels = []
        for start in range(0, n_samples, batch):
            keep = data[start : start + batch][:, segments].astype(rgb.dtype)[..., None]
            labels.append(model.forward(layout.from_rgb(keep * rgb, dtype)).astype(np.float64))
        return data, np.concatenate(labels)


class _ImageLayout:
    """Conversions between the model's image layout and LIME's RGB channels-last."""

    def __init__(self, shape: tuple[int, ...], channels_last: bool) -> None:
        if len(shape) == 3:
            self.kind, self.channels = "gray", 1
            self.spatial = shape[1:]
        elif channels_last:
            self.kind, self.channels = "last", shape[-1]
            self.spatial = shape[1:3]
        else:
            self.kind, self.channels = "first", shape[1]
            self.spatial = shape[2:]
        if self.channels not in (1, 3):
            raise OptionError(f"image LIME handles 1 or 3 channels, got {self.channels}")

    def spatial_ids(self, ids: np.ndarray) -> np.ndarray:
        """A per-sample id map (the sample's shape) reduced to its spatial part."""
        if self.kind == "gray":
            return ids
        return ids[0] if self.kind == "first" else ids[..., 0]

    def to_rgb(self, image: np.ndarray) -> np.ndarray:
        hwc = image[..., None] if self.kind == "gray" else image
        hwc = np.moveaxis(hwc, 0, -1) if self.kind == "first" else hwc
        return np.repeat(hwc, 3, axis=-1) if self.channels == 1 else hwc

    def from_rgb(self, batch: np.ndarray, dtype: Any) -> np.ndarray:
        batch = batch[..., :1] if self.channels == 1 else batch
        if self.kind == "gray":
            batch = batch[..., 0]
        elif self.kind == "first":
            batch = np.moveaxis(batch, -1, 1)
        return np.ascontiguousarray(batch, dtype=dtype)

    def spread(self, pixel_map: np.ndarray) -> np.ndarray:
        if self.kind == "gray":
            return pixel_map
        if self.kind == "first":
            return np.repeat(pixel_map[None], self.channels, axis=0)
        return np.repeat(pixel_map[..., None], self.channels, axis=-1)


@hookimpl
def xai_explainers() -> list[type[Explainer]]:
    return [Lime]
