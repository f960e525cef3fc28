"""The `Explainer` interface: built once with its options, run on any adapter.

An explainer knows nothing of frameworks: it receives a `BatchedModel` (the
adapter with the core's chunking in front), NumPy inputs and one resolved
target per sample, and returns an `Attribution`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .backend_utils import LAYER_INPUT
from .batching import BatchedModel
from .errors import OptionError
from .memory import available_memory

#: options every explainer accepts; the core consumes them
COMMON_OPTIONS: dict[str, Any] = {"internal_batch_size": None, "progress": True}


@dataclass
class Attribution:
    """What an explainer hands back to the core, which wraps it in an `Explanation`."""

    attributions: np.ndarray | None = None
    activations: dict[str, np.ndarray] = field(default_factory=dict)
    convergence_delta: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    #: option values settled while explaining (e.g. the seed drawn when none was given)
    options: dict[str, Any] = field(default_factory=dict)
    #: the layer whose output the attributions describe (None: the inputs)
    layer: str | list[str] | None = None  # a list: one attribution array per layer


class Explainer(ABC):
    """Base class of every explanation method.

    Subclasses set `name` (the `method` users pass to `explain`) and `defaults`
    (every option with its default value); `validate` checks values. Unknown
    option names are rejected here, once, for every explainer.
    """

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    #: capabilities needed from the adapter, for error messages and `xai plugins`
    requires: ClassVar[tuple[str, ...]] = ("forward",)
    #: False for methods that explain no class (activation capture): they run before the
    #: prediction step and get `target=None`, so one pass through the model suffices
    needs_target: ClassVar[bool] = True
    #: options holding reference inputs: for a model of several inputs they are given in the
    #: inputs' structure (a tuple or dict of parts) and packed like the inputs; every other
    #: option (`layers=[...]`, `categorical_features=[...]`) reaches the explainer as given
    reference_options: ClassVar[tuple[str, ...]] = ("baselines", "background")
    #: options that are per input in Captum, by kind (`inputs.pack_per_input`): for several
    #: inputs they may be given in the inputs' structure, and are converted for packed rows
    per_input_options: ClassVar[dict[str, str]] = {}
    #: whether the method also explains a model that returns one value for the whole batch
    #: (Captum's aggregation mode): the core then sets `BatchedModel.aggregate` and the
    #: method scores whole perturbed batches with `BatchedModel.batch_value`
    aggregate_mode: ClassVar[bool] = False
    #: whether the method's first model pass runs the samples themselves (a gradient pass
    #: over them, or over copies of them that `BatchedModel.gradient_groups` leads with the
    #: samples): the core then runs no prediction pass, and `explain` gets a
    #: `first_pass.PendingTarget` that that pass resolves (`np.asarray(target)` before it
    #: costs the prediction pass back); see `xai_core.first_pass`
    target_from_first_pass: ClassVar[bool] = False
    #: whether `neuron=` (with `layer=`) turns the method into Captum's Neuron* method:
    #: the core then explains that element of the layer's output instead of a model
    #: output (`outputs.LayerOutput`), and the method itself sees no `layer`
    neuron_option: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        key = _options_key(type(self), options)
        settled = _SETTLED.get(key) if key is not None else None
        if settled is None:
            self.options: dict[str, Any] = settle_options(self.name, self.defaults, options)
            self.validate()
            if key is not None:
                if len(_SETTLED) >= _SETTLED_KEPT:
                    _SETTLED.clear()
                _SETTLED[key] = dict(self.options)
        else:  # the same options checked before (an explainer called in a loop)
            self.options = dict(settled)

    def validate(self) -> None:  # noqa: B027 - optional hook, most explainers need it
        """Check option values; raise `OptionError` saying which and what is allowed."""

    @abstractmethod
    def explain(self, model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> Attribution:
        """Explain a validated batch; `target` holds one class index per sample
        (None when `needs_target` is False)."""

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if not _is_array(v))
        return f"{type(self).__name__}({opts})"


#: options already settled and validated, by (explainer class, options); `validate` only
#: checks, so the same options of the same class settle the same way every time
_SETTLED: dict[tuple, dict[str, Any]] = {}
_SETTLED_KEPT = 256


def _options_key(cls: type, options: dict[str, Any]) -> tuple | None:
    """A key for `options` that tells `True` from `1` and `1.0` (equal, and equally hashed,
    but validated differently); None where a value is not hashable (arrays, lists)."""
    key = (cls, *((name, type(value), value) for name, value in options.items()))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def settle_options(name: str, defaults: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """`defaults` overridden by `options`, plus the options the core consumes; unknown
    names are refused with the list of known ones (explainers and metrics alike)."""
    allowed = {**COMMON_OPTIONS, **defaults}
    unknown = options.keys() - allowed.keys()
    if unknown:
        raise OptionError(
            f"{name!r} has no option {', '.join(map(repr, sorted(unknown)))}. "
            f"Its options are: {', '.join(sorted(allowed))}."
        )
    for key, value in options.items():
        # NumPy scalars (n_steps=np.int64(5)) are plain Python values from here on
        allowed[key] = value.item() if isinstance(value, np.generic) else value
    if allowed["internal_batch_size"] is not None:
        check_positive_int("internal_batch_size", allowed["internal_batch_size"])
    if type(allowed["progress"]) is not bool:
        check_bool("progress", allowed["progress"])
    return allowed


#: drawn seeds fit every random generator the methods hand them to (lime's and NumPy's
#: legacy `RandomState` take < 2**32)
SEED_LIMIT = 2**32


def resolve_seed(seed: Any) -> int:
    """The seed to record: the user's, or fresh entropy so a run can be repeated.

    A drawn seed is below `SEED_LIMIT`; a user's seed may be any non-negative
    integer, and libraries with a 32-bit generator get `legacy_seed(seed)`.
    """
    if seed is None:
        return int(np.random.SeedSequence().entropy % SEED_LIMIT)
    if not _is_int(seed) or seed < 0:
        raise OptionError(f"seed must be a non-negative integer or None, got {seed!r}.")
    return int(seed)


def legacy_seed(seed: int) -> int:
    """`seed` folded into NumPy's legacy `RandomState` range (lime, shap's global RNG)."""
    return int(seed) % SEED_LIMIT


#: the largest count any option may ask for (steps, samples, rows): beyond it nothing fits
MAX_COUNT = 2**31 - 1


def check_positive_int(name: str, value: Any, minimum: int = 1) -> None:
    """Raise `OptionError` unless `value` is an int >= `minimum` (and a count that fits)."""
    if not _is_int(value) or value < minimum:
        raise OptionError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    if value > MAX_COUNT:
        raise OptionError(f"{name} must be at most {MAX_COUNT}, got {value!r}.")


def check_held(name: str, count: int, bytes_each: int, what: str) -> None:
    """Refuse a count whose arrays must be held at once and cannot fit in memory: an
    `OptionError` now instead of a raw MemoryError (or swapping) later. Only what a
    method keeps for all `count` draws together is counted here; what it cuts into
    `internal_batch_size` chunks is not."""
    needed = int(count) * int(bytes_each)
    # the free memory is read (a file on Linux) only for what could come near it: the
    # check then costs nothing on the calls of a loop
    free = available_memory() if needed > 1 << 26 else None
    if free is not None and needed > free:
        raise OptionError(
            f"{name}={count} needs {needed / 2**30:.1f} GiB at once for {what}, more than "
            f"the {free / 2**30:.1f} GiB this machine has free (internal_batch_size does "
            f"not cut it). Use a smaller {name}."
        )


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """Raise `OptionError` unless `value` is one of `choices`."""
    if value not in choices:
        raise OptionError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}.")


def check_feature_names(names: Any, n_features: int) -> None:
    """`feature_names` is None or one string per feature."""
    if names is None:
        return
    if isinstance(names, str) or not hasattr(names, "__len__") or len(names) != n_features:
        got = len(names) if hasattr(names, "__len__") and not isinstance(names, str) else names
        raise OptionError(
            f"feature_names must name each of the {n_features} features, got {got!r:.60}."
        )


def check_layer_option(layer: Any, several: bool = False) -> None:
    """`layer=` is None (attribute to the inputs) or a layer name (or, for a method that
    moves `several` layers together, a list of names)."""
    if several and isinstance(layer, (list, tuple)) and layer:
        for name in layer:
            check_layer_option(name)
        if len(set(layer)) != len(layer):
            raise OptionError(f"layer lists {list(layer)} with a name twice.")
        return
    if layer is not None and (not isinstance(layer, str) or not layer):
        raise OptionError(
            f"layer must be a layer name (e.g. 'embeddings', 'layer4.1.conv2') or None, got "
            f"{layer!r}; xai_core.summary(model) lists the names."
        )


def chosen_layer(options: dict[str, Any]) -> Any:
    """The layer an explainer attributes to: `layer`, or its input (the name with
    `backend_utils.LAYER_INPUT`) with Captum's `attribute_to_layer_input=True`; a list
    of layers comes back as a tuple of such names."""
    layer, at_input = options.get("layer"), options.get("attribute_to_layer_input", False)
    if not isinstance(at_input, bool):
        raise OptionError(f"attribute_to_layer_input must be True or False, got {at_input!r}.")
    if layer is None:
        if at_input:
            raise OptionError("attribute_to_layer_input=True needs layer=<name>.")
        return None
    if isinstance(layer, (list, tuple)):
        return tuple(chosen_layer({**options, "layer": name}) for name in layer)
    if at_input and not layer.endswith(LAYER_INPUT):
        return layer + LAYER_INPUT
    return layer


def check_float_layer(layer: str, output: np.ndarray) -> None:
    """A layer attributed to must output real numbers (an embedding, not its ids)."""
    if output.dtype.kind != "f":
        raise OptionError(
            f"layer {layer!r} outputs {output.dtype} values, which have no gradient; pick the "
            "layer after it (an embedding's output, not its ids)."
        )


def check_bool(name: str, value: Any) -> None:
    if type(value) is not bool and not isinstance(value, np.bool_):
        raise OptionError(f"{name} must be True or False, got {value!r}.")


def check_number(name: str, value: Any, minimum: float = 0.0) -> None:
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    if ok:
        try:
            ok = bool(np.isfinite(float(value)))
        except OverflowError:  # an int beyond float's range
            ok = False
    if not ok or value < minimum:
        raise OptionError(f"{name} must be a number >= {minimum}, got {value!r}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray)
