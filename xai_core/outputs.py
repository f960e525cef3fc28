"""Which output to explain when a model returns more than one tensor.

Models return a tensor, a tuple/list, a dict or a HuggingFace `ModelOutput` (a
dict-like dataclass). `explain(..., output=...)` picks one: an index, a key, or
a function of the raw output written with the framework's own ops (to explain
an aggregate such as the sum of class c over a pixel mask, as Captum users do
with a wrapper forward function). Framework-free: backends call `pick_output`
on whatever their model returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InputError


@dataclass(frozen=True)
class LayerOutput:
    """`output=` meaning the named layer's output instead of the model's: what Captum's
    Neuron* methods explain (`explain(..., layer=name, neuron=index)`). A backend with
    `layer_outputs = True` records that layer's output during a call and returns it from
    `select_output`; the target is then an index into the layer's output."""

    layer: str


def at_target(outputs: Any, target: Any) -> Any:
    """outputs (k, n, n_out) -> (k, n) at each sample's target (flat output index), as
    float64: perturbation methods and metrics read their k perturbed copies this way."""
    import numpy as np

    return np.take_along_axis(outputs, target[None, :, None], axis=2)[..., 0].astype(np.float64)


def describe(raw: Any) -> str:
    if isinstance(raw, Mapping):
        return f"a {type(raw).__name__} with keys {list(raw)}"
    if isinstance(raw, (tuple, list)):
        return f"a {type(raw).__name__} of {len(raw)} outputs"
    return f"a {type(raw).__name__}"


def pick_output(raw: Any, output: Any = None) -> Any:
    """The explained output: `output` applied to what the model returned.

    None: a lone tensor as is, `"logits"` when the model returned a mapping with
    that key, otherwise an `InputError` listing what the model returned.
    """
    if callable(output):
        return output(raw)
    if output is None:
        if isinstance(raw, Mapping):
            if "logits" in raw:
                return raw["logits"]
            raise InputError(
                f"the model returned {describe(raw)}; say which to explain with "
                f"output=<key>, e.g. output={next(iter(raw), 'logits')!r}."
            )
        if isinstance(raw, (tuple, list)):
            raise InputError(
                f"the model returned {describe(raw)}; say which to explain with "
                f"output=<index> (0..{len(raw) - 1})."
            )
        return raw
    try:
        if isinstance(raw, Mapping) and isinstance(output, int) and output not in raw:
            return list(raw.values())[output]
        return raw[output]
    except (KeyError, IndexError, TypeError):
        raise InputError(
            f"output={output!r} is not among what the model returned ({describe(raw)})."
        ) from None
