"""The contract between explainers and frameworks.

An explainer sees a model only through a `ModelAdapter`: NumPy arrays in,
NumPy arrays out. A backend implements the methods its framework can do; a
method it cannot do raises `CapabilityError` naming the backend and what to
use instead, so a forward-only backend (a remote scoring service, say) still
runs LIME and Kernel SHAP.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import CapabilityError, UnknownLayerError
from .outputs import pick_output

#: what to suggest when a backend lacks gradients
FORWARD_ONLY_METHODS = "occlusion, feature_ablation, rise, kernel_shap or lime"


@dataclass(frozen=True)
class LayerInfo:
    """One layer as every backend describes it."""

    name: str
    kind: str
    n_params: int
    output_shape: tuple[int | None, ...] | None = None


class ModelAdapter(ABC):
    """Wraps one model of one framework behind NumPy-in, NumPy-out methods.

    Subclasses set `backend` (the name users see in `Explanation.backend`) and
    implement `forward`; everything else is optional.
    """

    backend: str = "abstract"
    #: layout of multi-dimensional layer outputs: channels last (Keras) or first (PyTorch, Paddle)
    channels_last: bool = False
    #: which of the model's outputs to explain (`explain(..., output=...)`); backends pass
    #: what the model returned through `select_output`
    output: Any = None
    #: whether `gradients_and_outputs` and `layer_gradients_and_outputs` take a target that
    #: is a function of the pass's outputs (see those methods): the core then learns the
    #: predictions from the gradient pass itself, one forward per chunk instead of two
    targets_from_pass: bool = False

    def __init__(self, model: Any) -> None:
        self.model = model

    # `inputs` below is one NumPy array for a one-input model called without keyword
    # arguments, else an `xai_core.inputs.ModelInputs` (model(*args, **kwargs); gradients
    # with respect to its `attributed` arrays, returned as a tuple in that order).

    # -- required ----------------------------------------------------------
    @abstractmethod
    def forward(self, inputs: np.ndarray) -> np.ndarray:
        """Model outputs for a batch, batch first: (batch,), (batch, n_outputs) or more axes."""

    # -- optional capabilities -----------------------------------------------
    def gradients(self, inputs: np.ndarray, target: np.ndarray) -> np.ndarray:
        """d output[i, target[i]] / d inputs[i], same shape as `inputs`. An input the
        gradient does not reach raises `backend_utils.gradient_not_reached`, not zeros."""
        raise self.missing("gradients", f"use a forward-only method such as {FORWARD_ONLY_METHODS}")

    def gradients_and_outputs(
        self, inputs: np.ndarray, target: np.ndarray
    ) -> tuple[Any, np.ndarray | None]:
        """(`gradients(inputs, target)`, the model outputs of that same pass), so that the
        core can check every gradient call's outputs against the first call's (a model
        whose number of outputs changes between calls is an error, not a silent answer).
        Backends that compute the outputs anyway return them; the default returns None
        for the outputs (nothing checked).

        With `targets_from_pass`, `target` may be a function: call it with this pass's
        outputs as NumPy (batch first, as the model returned them) after the forward step
        and before the backward one; it returns the target array (`backend_utils.
        target_of_pass` does this). The core so chooses the predicted class, or checks
        the user's target, without a prediction pass of its own."""
        return self.gradients(inputs, target), None

    def layer_gradients_and_outputs(
        self,
        inputs: np.ndarray,
        target: Any,
        layer: Any,
        replacement: Any = None,
    ) -> tuple[Any, Any, np.ndarray | None]:
        """`layer_gradients(...)` and the model outputs of that pass (None: not known), with
        targets as in `gradients_and_outputs`."""
        if replacement is None:
            return (*self.layer_gradients(inputs, target, layer), None)
        return (*self.layer_gradients(inputs, target, layer, replacement), None)

    def rule_gradients(
        self, inputs: np.ndarray, target: np.ndarray, rules: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """(`gradients_and_outputs`, with the backward pass of every layer whose kind has a
        rule in `rules` replaced by it): the `backward_rules` capability behind DeepLift,
        Guided Backprop, Deconvolution and LRP (see `xai_core.rules`). `inputs` and
        `target` as in `gradients_and_outputs` (a function of the pass's outputs where
        `targets_from_pass`). The model's hooks, modes and gradients are as before
        afterwards, also when a rule fails."""
        has_gradients = type(self).gradients_and_outputs is not ModelAdapter.gradients_and_outputs
        raise self.missing(
            "backward rules (DeepLift, Guided Backprop, Deconvolution, LRP)",
            "use saliency, integrated_gradients or gradient_shap"
            if has_gradients
            else f"use a forward-only method such as {FORWARD_ONLY_METHODS}",
        )

    def layer_kinds(self) -> dict[str, str | None]:
        """Leaf layer name -> the kind backward rules know it as (`xai_core.rules`), or
        None for a layer the backend cannot name a kind for (it backpropagates as usual)."""
        raise self.missing("backward rules (DeepLift, Guided Backprop, Deconvolution, LRP)")

    def layers(self) -> list[LayerInfo]:
        """Leaf layers in execution order, named as the framework names them."""
        raise self.missing("layer inspection")

    def capture(self, inputs: np.ndarray, layers: Sequence[str]) -> dict[str, np.ndarray]:
        """Outputs of the named layers for a batch, batch first, in the framework's layout."""
        raise self.missing("layer capture")

    def forward_and_capture(
        self, inputs: np.ndarray, layers: Sequence[str]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Model outputs and captured layers; backends override this to do it in one pass."""
        return self.forward(inputs), self.capture(inputs, layers)

    def layer_gradients(
        self,
        inputs: np.ndarray,
        target: np.ndarray,
        layer: str,
        replacement: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(activation, d output[i, target[i]] / d activation) at the named layer.

        `target` indexes the flattened outputs. With `replacement` (the layer's
        output shape), the layer's output is replaced by it during the pass and
        the gradient is taken there (layer Integrated Gradients needs this). A
        layer whose output does not reach the outputs raises
        `backend_utils.gradient_not_reached` (never zeros that say nothing). A backend
        may implement `layer_gradients_and_outputs` instead; this is then its first two.
        """
        if type(self).layer_gradients_and_outputs is not ModelAdapter.layer_gradients_and_outputs:
            return self.layer_gradients_and_outputs(inputs, target, layer, replacement)[:2]
        raise self.missing("gradients at a layer")

    def token_log_probs(self, logits: Any, positions: np.ndarray, tokens: np.ndarray) -> Any:
        """log softmax(logits[:, positions[t]])[tokens[t]] for each t, as the framework's
        tensor of shape (batch, len(tokens)): what a language model's continuation is
        explained by (`xai_core.explain_text`). `logits` is the framework's (batch, seq,
        vocab) tensor; written with its own ops, so gradients flow through it."""
        raise self.missing("token log-probabilities (explaining a language model's continuation)")

    def layer_parameters(self, layer: str) -> list[np.ndarray]:
        """The named layer's learnable parameters as copies, in PyTorch's layout (Linear
        (out, in), Conv (out, in, *kernel)) and order (weight, bias), so that draws made
        on them mean the same in every framework (`model_randomization`)."""
        raise self.missing("randomised copies of the model (model_randomization)")

    def with_parameters(
        self, replaced: dict[str, list[np.ndarray]], in_place: bool = False
    ) -> ModelAdapter:
        """An adapter over a copy of the model whose named layers' parameters are replaced
        (arrays as `layer_parameters` gives them). The model itself is never modified;
        `in_place=True` replaces them in this adapter's model and returns it — the core
        only asks that of a copy it made (a cascade re-draws one more layer per step)."""
        raise self.missing("randomised copies of the model (model_randomization)")

    def fingerprint(self) -> str | None:
        """A hash of everything that decides the model's outputs (weights and buffers such
        as BatchNorm statistics), so that `explain_dataset` never resumes a store with
        other weights. The default hashes `layer_parameters` of every layer; backends
        override it with their framework's full state. None: the backend cannot tell."""
        from .fingerprint import array_digest

        try:
            return array_digest(
                array
                for layer in self.layers()
                if layer.n_params
                for array in self.layer_parameters(layer.name)
            )
        except CapabilityError:
            return None

    # -- lifecycle -----------------------------------------------------------
    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Put the model in inference state for a whole explanation and restore it after.

        The core enters this once per `explain` call, so per-batch calls do not
        toggle modes. Backends override it; the default has no state to manage.
        """
        yield

    @contextlib.contextmanager
    def foreign_session(self) -> Iterator[None]:
        """Hand the model to a library that patches it (shap's DeepExplainer adds hooks and
        attributes to modules, or overrides the framework's gradient registry), and put
        back everything it may leave behind, also when it fails half-way.

        Backends whose models or framework such a library can touch override this;
        the default has nothing to restore.
        """
        yield

    def to_numpy(self, inputs: Any) -> np.ndarray:
        """Convert the framework's tensor (or anything array-like) to NumPy."""
        return np.asarray(inputs)

    def to_framework(self, inputs: np.ndarray) -> Any:
        """NumPy to the framework's tensor, for explainers that hand the model to a library
        that wants it (shap's DeepExplainer)."""
        raise self.missing("conversion to framework tensors")

    def framework_model(
        self, constant_kwargs: dict[str, Any], row_kwargs: dict[str, np.ndarray]
    ) -> Any:
        """The model as the framework's own callable of one input tensor, for a library that
        must run the framework itself (shap's DeepExplainer): the explained output
        (`self.output`) picked, `constant_kwargs` passed as they are and each of
        `row_kwargs` (one sample's batch-first arguments, one row each) repeated to the
        call's rows. Without either, the model itself; backends that can wrap a model
        override this, the others refuse what they cannot pass on."""
        if not constant_kwargs and not row_kwargs and self.output is None:
            return self.model
        raise self.missing(
            "passing output= and forward_kwargs to a library that runs the framework "
            "itself (shap.DeepExplainer)",
            "use gradient_shap, which takes them on any backend with gradients",
        )

    def framework_version(self) -> str | None:
        """Version of the framework, recorded in every `Explanation`."""
        return None

    # -- helpers for subclasses ---------------------------------------------------
    def select_output(self, raw: Any) -> Any:
        """The output to explain among what the model returned (see `xai_core.outputs`)."""
        return pick_output(raw, self.output)

    def missing(self, capability: str, hint: str | None = None) -> CapabilityError:
        """The error to raise for a capability this backend does not have."""
        message = (
            f"the {self.backend!r} backend ({type(self).__name__}) does not support {capability}"
        )
        return CapabilityError(f"{message}; {hint}." if hint else f"{message}.")

    def check_layers(self, names: Sequence[str], containers: Sequence[str] = ()) -> None:
        """Raise `UnknownLayerError` listing the model's layers if a name is not one of them.

        `containers` are the blocks (nested names such as 'layer4.1') a backend also
        accepts; they are listed in the message too."""
        known = [layer.name for layer in self.layers()]
        unknown = [n for n in names if n not in known and n not in containers]
        if unknown:
            blocks = (
                f" Blocks that contain layers are accepted too: {', '.join(containers)}."
                if containers
                else ""
            )
            raise UnknownLayerError(
                f"the model has no layer named {', '.join(map(repr, unknown))}. "
                f"Its layers are: {', '.join(known) or '(none)'}.{blocks}"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__})"
