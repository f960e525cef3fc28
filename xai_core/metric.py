"""The `Metric` interface: how much an explanation can be trusted, as a number per sample.

A metric sees the model the way an explainer does, through the core: a
`MetricContext` hands it the explained inputs and attributions (one packed row
per sample, as explainers see them), runs the model on perturbed copies in the
core's chunks, re-explains perturbed inputs with the explanation's own method
and options in one batched call, and builds randomised copies of the model.
It never imports a framework.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .batching import BatchedModel
from .errors import CapabilityError, InputError, XaiError
from .explainer import settle_options
from .outputs import at_target

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .adapter import ModelAdapter
    from .explanation import Explanation
    from .inputs import InputLayout


@dataclass
class MetricResult:
    """What a metric returns: one score per sample, and the curve behind it if it has one.

    `curves` are (samples, points) with the points at `curve_x` (the fraction of
    features removed for deletion, the randomised layers for model randomisation).
    """

    scores: np.ndarray
    curves: np.ndarray | None = None
    curve_x: np.ndarray | None = None
    curve_labels: list[str] | None = None
    x_label: str = ""
    y_label: str = ""
    #: option values settled while scoring (the seed drawn when none was given)
    options: dict[str, Any] = field(default_factory=dict)
    metric: str = ""
    method: str = ""

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Any:
        """The mean curve with one thin line per sample (deletion, insertion, cascades)."""
        from .plotting import plot_metric_curves

        return plot_metric_curves(self, ax=ax, **kwargs)


class Metric(ABC):
    """Base class of every evaluation metric.

    Subclasses set `name` (what users pass to `evaluate`), `defaults` (every option
    with its default), `higher_is_better`, and implement `score`. Unknown option
    names are refused here, once, as for explainers.
    """

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    #: True / False, or None where neither end is better by itself (complexity)
    higher_is_better: ClassVar[bool | None] = None
    #: what the metric needs: "forward" (runs the model), "explain" (re-explains
    #: perturbed inputs), "randomized" (randomised copies of the model), "baseline"
    requires: ClassVar[tuple[str, ...]] = ()
    #: options given per input for several inputs (`inputs.pack_per_input` kinds), such as
    #: `perturbations` in the inputs' structure (what Captum's perturb_func returns)
    per_input_options: ClassVar[dict[str, str]] = {}

    def __init__(self, **options: Any) -> None:
        self.options: dict[str, Any] = settle_options(self.name, self.defaults, options)
        self.validate()

    def validate(self) -> None:  # noqa: B027 - optional hook
        """Check option values; raise `OptionError` saying which and what is allowed."""

    @abstractmethod
    def score(self, context: MetricContext) -> MetricResult:
        """Score every sample of the explanation in `context`."""

    def __repr__(self) -> str:
        opts = ", ".join(
            f"{k}={v!r}" for k, v in self.options.items() if not isinstance(v, np.ndarray)
        )
        return f"{type(self).__name__}({opts})"


class MetricContext:
    """The explanation under evaluation and the model behind it, for one `evaluate` call."""

    def __init__(
        self,
        metric: str,
        adapter: ModelAdapter,
        explanation: Explanation,
        layout: InputLayout,
        inputs: np.ndarray,
        attributions: np.ndarray | None,
        model: BatchedModel,
        forward_kwargs: dict[str, Any] | None,
        output: Any,
        rerun: Callable[..., Any] | None = None,
    ) -> None:
        #: `rerun(method, options, adapter, inputs, target, forward_kwargs, output,
        #: known_outputs)` -> Explanation: the explain verb, handed down by `evaluate` (the
        #: metric interface sits below the verbs and imports none of them)
        self._rerun = rerun
        self.metric = metric
        self.adapter = adapter
        self.explanation = explanation
        self.layout = layout
        #: the explained inputs, one (packed) row per sample
        self.inputs = inputs
        self.attributions = attributions
        #: one index per sample into the flattened outputs
        self.target = np.asarray(explanation.target).reshape(len(inputs), -1)[:, 0]
        self.model = model
        self.forward_kwargs = forward_kwargs
        self.output = output

    @property
    def method(self) -> str:
        return self.explanation.method

    # -- what the metric may assume ----------------------------------------------------
    def input_attributions(self) -> np.ndarray:
        """Attributions shaped like the inputs, as float64; a clear error for layer or
        capture-only explanations."""
        a = self.attributions
        if a is None:
            raise XaiError(
                f"metric {self.metric!r} scores attributions, and the {self.method!r} "
                "explanation has none (capture-only method); explain with an attribution "
                "method."
            )
        a = np.asarray(a)
        if self._per_token(a):
            # an embedding layer's attributions for token ids, (N, T, dim): one score per
            # token, their sum over the embedding (Captum's text tutorials), so that metrics
            # that replace tokens by the baseline token can score them
            return a.reshape(*self.inputs.shape, -1).sum(axis=-1).astype(np.float64)
        if self.explanation.layer is not None or a.shape != self.inputs.shape:
            raise XaiError(
                f"metric {self.metric!r} compares attributions with the inputs they perturb, "
                f"and this explanation attributes to layer {self.explanation.layer!r} (shape "
                f"{a.shape}, inputs {self.inputs.shape}); explain without layer= to evaluate it."
            )
        return a.astype(np.float64)

    def _per_token(self, a: np.ndarray) -> bool:
        """Whether `a` holds one embedding-layer attribution vector per integer input."""
        integer = self.layout.integer_mask() if self.layout is not None else None
        return (
            self.explanation.layer is not None
            and integer is not None
            and bool(integer.all())
            and a.ndim > self.inputs.ndim
            and a.shape[: self.inputs.ndim] == self.inputs.shape
        )

    def float_inputs(self) -> np.ndarray:
        """The inputs, for metrics that add noise: integer inputs (token ids) have none."""
        if self.inputs.dtype.kind != "f":
            raise XaiError(
                f"metric {self.metric!r} adds noise to the inputs, and these are "
                f"{self.inputs.dtype} (token ids?); use deletion, insertion or "
                "faithfulness_correlation with a baseline id, which replace features instead."
            )
        return self.inputs

    # -- one layout for draws and orders -------------------------------------------------
    @property
    def _moves_channels(self) -> bool:
        return bool(self.adapter.channels_last) and self.inputs.ndim >= 3

    def to_canonical(self, arrays: np.ndarray, lead: int = 1) -> np.ndarray:
        """Arrays shaped like the inputs after `lead` leading axes, channels first.

        Metrics draw noise and random subsets, and break ties, in this layout so that a
        channels-last (Keras) twin gets the same draws as its PyTorch sibling."""
        if not self._moves_channels:
            return arrays
        return np.moveaxis(arrays, -1, lead)

    def from_canonical(self, arrays: np.ndarray, lead: int = 1) -> np.ndarray:
        """Undo `to_canonical`: back to the model's layout."""
        if not self._moves_channels:
            return arrays
        return np.ascontiguousarray(np.moveaxis(arrays, lead, -1))

    @property
    def canonical_shape(self) -> tuple[int, ...]:
        """The inputs' shape, channels first."""
        return self.to_canonical(np.empty((0, *self.inputs.shape[1:]), np.int8)).shape[1:]

    # -- the model ------------------------------------------------------------------
    def target_outputs(self, inputs: np.ndarray, softmax: bool = False) -> np.ndarray:
        """f(inputs)[target] per sample, float64: `inputs` holds one row per sample."""
        out = self.model.forward(inputs)
        return at_target(_maybe_softmax(out[None], softmax), self.target)[0]

    def check_output_width(self, width: int) -> None:
        """The model scored must return as many outputs per sample as when it was explained
        (else the target indexes another output: GPT-2's logits of every position instead
        of the last one's, when output= is forgotten)."""
        recorded = np.asarray(self.explanation.predictions)
        if recorded.ndim < 1 or len(recorded) != len(self.inputs) or np.isnan(recorded).all():
            return
        explained = int(np.prod(recorded.shape[1:]))
        if width != explained:
            raise InputError(
                f"the model now returns {width} outputs per sample, but {explained} when it "
                "was explained: the target would index another output. Score with the "
                "output= and forward_kwargs given to explain (evaluate reuses the "
                "explanation's own unless told otherwise)."
            )

    def explained_outputs(
        self, softmax: bool = False, first: np.ndarray | None = None
    ) -> np.ndarray:
        """f(x)[target] per sample for the explained inputs, from the explanation's own
        predictions once the model is seen to still give them on the first sample (its
        output `first` when a call already computed it); else computed. Saves the
        batch's forward pass, as reusing the explanation's attributions saves
        recomputing them."""
        recorded = np.asarray(self.explanation.predictions)
        if recorded.ndim >= 1 and len(recorded) == len(self.inputs):
            recorded = recorded.reshape(len(self.inputs), -1)
            if self.model.batch_kwargs:  # rows carry their sample's kwargs: the whole batch
                outputs = self.model.forward(self.inputs)
                self.check_output_width(outputs.shape[1])
                return at_target(_maybe_softmax(outputs[None], softmax), self.target)[0]
            if first is None:
                first = self.model.forward(self.inputs[:1])
            self.check_output_width(first.shape[1])
            if (
                first.shape[1:] == recorded.shape[1:]
                and np.isfinite(recorded).all()
                and bool(
                    np.all(
                        np.abs(first[0] - recorded[0])
                        <= 1e-4 * np.abs(recorded[0]) + 1e-6 * (1 + np.abs(recorded[0]).max())
                    )
                )
            ):
                return at_target(_maybe_softmax(recorded[None], softmax), self.target)[0]
        return self.target_outputs(self.inputs, softmax)

    def explained_and_blocks(
        self,
        n_blocks: int,
        make_block: Callable[[int, int], np.ndarray],
        softmax: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(`explained_outputs`, `target_outputs_of_blocks`) with the first sample's check
        riding in the copies' first model call."""
        scores = self.target_outputs_of_blocks(n_blocks, make_block, softmax, self.inputs[:1])
        return self.explained_outputs(softmax, self.model.extra_outputs), scores

    def target_outputs_of_blocks(
        self,
        n_blocks: int,
        make_block: Callable[[int, int], np.ndarray],
        softmax: bool = False,
        extra: np.ndarray | None = None,
    ) -> np.ndarray:
        """f[target] on `n_blocks` perturbed copies of the batch: (n_blocks, samples).

        `make_block(start, stop)` builds copies start..stop-1 as (stop - start, samples,
        *sample shape); the core sizes the groups so that no call exceeds its budget and
        the copies never all exist at once."""
        scores = np.empty((n_blocks, len(self.inputs)), np.float64)
        groups = self.model.forward_groups(n_blocks, make_block, self.inputs, extra)
        for start, stop, out in groups:
            self.check_output_width(out.shape[-1])
            scores[start:stop] = at_target(_maybe_softmax(out, softmax), self.target)
        return scores

    def labels_of_blocks(self, blocks: np.ndarray) -> np.ndarray:
        """The predicted class (argmax of the output) of every copy in `blocks` (k, samples,
        *sample shape) and, as block 0 of the result, of the inputs: (k + 1, samples)."""

        def make_block(start: int, stop: int) -> np.ndarray:
            return blocks[start:stop]

        labels = [self.model.forward(self.inputs).reshape(len(self.inputs), -1).argmax(1)]
        for _, _, out in self.model.forward_groups(len(blocks), make_block, self.inputs):
            labels.extend(out.reshape(*out.shape[:2], -1).argmax(axis=2))
        return np.stack(labels)

    def reexplain(
        self,
        blocks: np.ndarray,
        adapter: ModelAdapter | None = None,
        target: np.ndarray | None = None,
    ) -> np.ndarray:
        """The explanation's method, with its options, on perturbed copies of the batch.

        `blocks` is (k, samples, *sample shape); all k * samples rows go to the method in
        one call (the core chunks it), each with its sample's target and forward_kwargs,
        a sample's copies side by side (nearly identical neighbouring rows run faster, see
        `BatchedModel.forward_groups`). Returns attributions as (k, samples, ...): shaped
        like `blocks`, or like the layer's output for a `layer=` explanation. `adapter`
        runs another model (a randomised copy) instead of the explained one; `target`
        (one flat output index per sample) explains other outputs than the explained."""
        if self._rerun is None:
            raise XaiError(
                f"metric {self.metric!r} re-explains inputs, and this MetricContext was built "
                "without the explain verb (xai_core.evaluate builds it with one)."
            )
        k, n = len(blocks), len(self.inputs)
        rows = np.ascontiguousarray(blocks.swapaxes(0, 1)).reshape(k * n, *self.inputs.shape[1:])
        structured = self.layout.structure(self.layout.unpack(rows)) if self.layout.packed else rows
        result = self._rerun(
            self.method,
            self.explanation.options,
            adapter or self.adapter,
            structured,
            self._targets_for(k, target),
            _repeat_kwargs(self.forward_kwargs, n, k, self.adapter.to_numpy),
            self.output,
            self._output_shape(),
        )
        attributions = np.asarray(
            self.layout.pack_structure(result.attributions, np.float64), np.float64
        )
        return attributions.reshape(n, k, *attributions.shape[1:]).swapaxes(0, 1)

    def _output_shape(self) -> tuple[int, ...]:
        """One sample's output shape, known from the explanation (no extra forward pass)."""
        shape = self.model.output_shape
        if shape is None:
            shape = (
                int(
                    np.asarray(self.explanation.predictions).reshape(len(self.inputs), -1).shape[1]
                ),
            )
        return shape

    def _targets_for(self, k: int, target: np.ndarray | None = None) -> Any:
        shape = self._output_shape()
        chosen = self.target if target is None else np.asarray(target)
        repeated = np.repeat(chosen, k)  # a sample's copies side by side
        if shape is not None and len(shape) > 1:
            return [tuple(int(i) for i in np.unravel_index(t, shape)) for t in repeated]
        return repeated

    # -- randomised copies (model_randomization) ----------------------------------------
    def parameter_layers(self) -> list[str]:
        """Layers with parameters, in execution order (the cascade runs from the last)."""
        return [layer.name for layer in self.adapter.layers() if layer.n_params > 0]

    def randomized_cascade(
        self, layers: Sequence[str], seed: int, order: str = "top_down"
    ) -> Iterator[tuple[str, ModelAdapter]]:
        """Copies of the model with the last 1, 2, ... of `layers` re-drawn ("top_down"),
        the first 1, 2, ... ("bottom_up"), or each layer alone ("independent"): Quantus
        MPRT's `layer_order`s.

        Every framework draws the same numbers: parameters are drawn here with NumPy in
        the PyTorch layout (`ModelAdapter.layer_parameters`), uniform in
        +-1/sqrt(fan_in) as PyTorch's default initialisation, from a generator seeded by
        (seed, layer position); the adapter puts them into a copy of the model. The
        user's model is never touched."""
        copy: ModelAdapter | None = None
        positions = range(len(layers)) if order == "bottom_up" else range(len(layers))[::-1]
        if order == "independent":
            positions = range(len(layers))
        for position in positions:
            layer = layers[position]
            params = self.adapter.layer_parameters(layer)
            rng = np.random.default_rng([seed, position])
            weights = [p for p in params if p.ndim > 1]
            fan_in = int(np.prod(weights[0].shape[1:])) if weights else max(params[0].size, 1)
            bound = 1.0 / np.sqrt(fan_in)
            drawn = {
                layer: [
                    rng.uniform(-bound, bound, p.shape).astype(p.dtype, copy=False) for p in params
                ]
            }
            # one copy for the whole cascade, each step re-drawing one more layer in it
            if copy is None or order == "independent":  # independent: a fresh copy each
                copy = self.adapter.with_parameters(drawn)
            else:
                copy = copy.with_parameters(drawn, in_place=True)
            yield layer, copy


def _maybe_softmax(outputs: np.ndarray, softmax: bool) -> np.ndarray:
    if not softmax:
        return outputs
    z = outputs.astype(np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _repeat_kwargs(
    kwargs: dict[str, Any] | None, n: int, k: int, to_numpy: Callable[[Any], np.ndarray]
) -> dict[str, Any] | None:
    """forward_kwargs for k copies of each sample, side by side: batch-first values follow
    their samples."""
    if not kwargs:
        return kwargs
    tiled = {}
    for name, value in kwargs.items():
        shape = getattr(value, "shape", None)
        if shape is not None and len(shape) >= 1 and shape[0] == n:
            tiled[name] = np.repeat(to_numpy(value), k, axis=0)
        else:
            tiled[name] = value
    return tiled


def capability_error(metric: str, method: str, needs: str, use: str) -> CapabilityError:
    """The error for a metric that cannot score this explanation, with what to do."""
    return CapabilityError(f"metric {metric!r} needs {needs}, which {method!r} lacks; {use}.")
