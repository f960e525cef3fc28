"""Every mistake a user can make raises a subclass of `XaiError`.

One base class lets callers catch "xai_core told me I did something wrong"
without also catching framework bugs; the subclasses let tests and programs
tell the cases apart. Each message says what was wrong and what to do.
"""

from __future__ import annotations


class XaiError(Exception):
    """Base class of every error xai_core raises about user input or setup."""


class UnsupportedModelError(XaiError, TypeError):
    """No installed backend recognises the model."""


class InputError(XaiError, ValueError):
    """Inputs are empty, non-finite, of the wrong type or of a shape the model rejects."""


class TargetError(XaiError, ValueError):
    """`target` is out of range or does not give one class per sample."""


class OptionError(XaiError, ValueError):
    """An explainer option is unknown or has an invalid value."""


class LayerNotRunError(OptionError):
    """A layer the model owns did not run during the forward pass."""

    def __init__(self, layer: str) -> None:
        super().__init__(
            f"layer {layer!r} did not run during the forward pass (the model owns it but never "
            "calls it, or skips it for these inputs), so it has no output to capture or "
            "attribute to. Pick a layer the model calls; `xai_core.summary(model)` lists them."
        )
        self.layer = layer


class UnknownMethodError(XaiError, KeyError):
    """No installed explainer has the requested name."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class UnknownMetricError(UnknownMethodError):
    """No installed metric has the requested name."""


class UnknownLayerError(XaiError, KeyError):
    """The model has no layer of the requested name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class AmbiguousLayerError(UnknownLayerError):
    """A short layer name matches several nested layers (two towers' `proj`)."""


class ModelOutputError(XaiError, ValueError):
    """The model (or its backend) returned something unusable: NaN/inf, the wrong number
    of rows, a wrong shape."""


class GradientNotReachedError(ModelOutputError):
    """The explained output's gradient does not reach an input or a layer: attributions
    there would be zeros that say nothing (a detached or integer path, a compiled graph
    without a backward pass). Captum raises too (`torch.autograd.grad` without
    `allow_unused`)."""


class CapabilityError(XaiError, NotImplementedError):
    """The backend cannot do what the explainer needs (gradients, layer hooks...)."""


class PluginError(XaiError):
    """Plugins conflict, e.g. two explainers registered under one name."""
