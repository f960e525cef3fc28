"""The `Explainer` interface: built once with its options, run on any adapter.

An explainer knows nothing of frameworks: it receives a `BatchedModel` (the
adapter with the core's chunking in front), NumPy inputs and one resolved
target per sample, and returns an `Attribution`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .batching import BatchedModel
from .errors import OptionError

#: options every explainer accepts; the core consumes them
COMMON_OPTIONS: dict[str, Any] = {"internal_batch_size": None}


@dataclass
class Attribution:
    """What an explainer hands back to the core, which wraps it in an `Explanation`."""

    attributions: np.ndarray | None = None
    activations: dict[str, np.ndarray] = field(default_factory=dict)
    convergence_delta: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)


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

    def __init__(self, **options: Any) -> None:
        allowed = {**COMMON_OPTIONS, **self.defaults}
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise OptionError(
                f"{self.name!r} has no option {', '.join(map(repr, unknown))}. "
                f"Its options are: {', '.join(sorted(allowed))}."
            )
        self.options: dict[str, Any] = {**allowed, **options}
        batch = self.options["internal_batch_size"]
        if batch is not None and (not _is_int(batch) or batch < 1):
            raise OptionError(
                f"internal_batch_size must be a positive integer or None, got {batch!r}."
            )
        self.validate()

    def validate(self) -> None:  # noqa: B027 - optional hook, most explainers need it
        """Check option values; raise `OptionError` saying which and what is allowed."""

    @abstractmethod
    def explain(self, model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> Attribution:
        """Explain a validated batch; `target` holds one class index per sample."""

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if not _is_array(v))
        return f"{type(self).__name__}({opts})"


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray)
