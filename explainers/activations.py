"""Activation capture: the outputs of named layers, as the framework computes them.

`layers` takes exact names or shell-style patterns ("conv*"); None means every
leaf layer that runs (a layer the model owns but never calls is left out; asked
for by name, it is a `LayerNotRunError`; an output that is not batch first, such as a
position embedding's (1, T, D), is left out and listed in `extras["skipped_layers"]`).
A layer that returns a tuple (LSTM, attention) is captured part by part, as
`name[0]`, `name[1][0]`, ... (Captum's LayerActivation returns the tuple). Only the
requested layers are kept, chunk by chunk, and the same pass through the model yields
the predictions.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence

import numpy as np

from xai_core import Attribution, BatchedModel, Explainer, hookimpl
from xai_core.errors import (
    AmbiguousLayerError,
    LayerNotRunError,
    OptionError,
    UnknownLayerError,
)


def select_layers(
    requested: str | Sequence[str] | None,
    known: Sequence[str],
    exists: Callable[[str], bool] = lambda name: False,
) -> list[str]:
    """Names for exact names and patterns (matched against the leaf layers `known`);
    an exact name outside `known` is accepted if `exists` says the backend can hook it."""
    if requested is None:
        return list(known)
    patterns = [requested] if isinstance(requested, str) else list(requested)
    if not patterns or not all(isinstance(p, str) for p in patterns):
        raise OptionError("layers must be a layer name, a pattern, a list of them, or None.")
    chosen: list[str] = []
    unmatched = []
    for pattern in patterns:
        if pattern in known or exists(pattern):
            hits = [pattern]
        else:
            hits = fnmatch.filter(known, pattern)
        if not hits:
            unmatched.append(pattern)
        chosen += [h for h in hits if h not in chosen]
    if unmatched:
        raise UnknownLayerError(
            f"no layer matches {', '.join(map(repr, unmatched))}. "
            f"The model's layers are: {', '.join(known) or '(none)'}."
        )
    return chosen


class Activations(Explainer):
    name = "activations"
    defaults = {"layers": None}
    requires = ("capture",)
    needs_target = False

    def validate(self) -> None:
        layers = self.options["layers"]
        if layers is None or isinstance(layers, str):
            return
        if (
            not isinstance(layers, (list, tuple))
            or not layers
            or not all(isinstance(n, str) for n in layers)
        ):
            raise OptionError(
                f"layers must be None (every layer), a layer name or pattern, or a list of them; "
                f"got {layers!r:.60}. xai_core.summary(model) lists the names."
            )

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: None) -> Attribution:
        requested = self.options["layers"]
        if isinstance(requested, (list, tuple)) and all(
            isinstance(n, str) and not any(c in n for c in "*?[") for n in requested
        ):  # exact names: no need to list the model's layers
            model.check_layers(requested)
            return self._capture(model, inputs, list(dict.fromkeys(requested)), False)
        known = [layer.name for layer in model.layers()]

        def exists(name: str) -> bool:  # containers, not only leaves, where a backend allows
            try:
                model.check_layers([name])
            except AmbiguousLayerError:
                raise
            except UnknownLayerError:
                return False
            return True

        names = select_layers(requested, known, exists)
        if requested is not None:
            return self._capture(model, inputs, names, False)
        while True:  # every layer that runs: a layer the model owns but never calls is left out
            try:
                return self._capture(model, inputs, names, True)
            except LayerNotRunError as exc:
                if exc.layer not in names or len(names) == 1:
                    raise
                names = [n for n in names if n != exc.layer]

    @staticmethod
    def _capture(
        model: BatchedModel, inputs: np.ndarray, names: list[str], every_layer: bool
    ) -> Attribution:
        """Tuple outputs come back part by part (`lstm[0]`, `lstm[1][0]`); with every layer,
        outputs that are not batch first are skipped and listed in
        `extras["skipped_layers"]` ("name: why") instead of failing the call."""
        activations = model.capture(inputs, names, structures=True, skip_unbatched=every_layer)
        extras = {}
        if model.skipped_layers:
            extras["skipped_layers"] = np.array(
                [f"{name}: {why}" for name, why in model.skipped_layers.items()]
            )
        return Attribution(
            activations=activations,
            extras=extras,
            options={"channels_last": model.channels_last},
        )


@hookimpl
def xai_explainers() -> list[type[Explainer]]:
    return [Activations]
