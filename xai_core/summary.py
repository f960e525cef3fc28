"""One model summary for every framework: layer names, kinds, output shapes, parameters."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .adapter import LayerInfo
from .errors import CapabilityError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DENSE_KINDS = {"Linear", "Dense"}


@dataclass
class Summary:
    """What `xai_core.summary` returns; `str()` is the table, `plot()` the drawing."""

    backend: str
    model: str
    layers: list[LayerInfo]
    input_shape: tuple[int | None, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_params(self) -> int:
        return int(sum(layer.n_params for layer in self.layers))

    def rows(self) -> list[tuple[str, str, str, int]]:
        return [
            (layer.name, layer.kind, _shape(layer.output_shape), int(layer.n_params))
            for layer in self.layers
        ]

    def __str__(self) -> str:
        header = ("layer", "kind", "output shape", "params")
        body = [(n, k, s, f"{p:,}") for n, k, s, p in self.rows()]
        widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(4)]

        def line(cells) -> str:
            return "  ".join(
                str(c).rjust(w) if i == 3 else str(c).ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths))
            )

        rule = "-" * len(line(header))
        title = f"{self.model} ({self.backend})"
        if self.input_shape is not None:
            title += f", input {_shape(self.input_shape)}"
        total = f"total parameters: {self.total_params:,}"
        return "\n".join([title, rule, line(header), rule, *map(line, body), rule, total])

    def is_dense(self) -> bool:
        """Only dense layers carry parameters (with activations between them)."""
        return all(layer.kind in DENSE_KINDS for layer in self.layers if layer.n_params) and any(
            layer.kind in DENSE_KINDS for layer in self.layers
        )

    def plot(self) -> Figure:
        """Neurons and arrows for a dense network; a layer-block diagram otherwise."""
        from .plotting import plot_network

        return plot_network(self)


def _shape(shape: tuple[int | None, ...] | None) -> str:
    if shape is None:
        return "?"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def summary(model: Any, inputs: Any = None) -> Summary:
    """Summarise any supported model; with `inputs` (one sample is enough), output shapes
    are filled in from a real forward pass where the framework does not know them."""
    from .api import adapt
    from .validation import check_inputs

    adapter = adapt(model)
    layers = adapter.layers()
    input_shape = None
    if inputs is not None:
        x = check_inputs(adapter.to_numpy(inputs))[:1]
        input_shape = (None, *x.shape[1:])
        missing = [  # unknown, or known only symbolically (Keras: None spatial dims)
            layer.name
            for layer in layers
            if layer.output_shape is None or None in tuple(layer.output_shape)[1:]
        ]
        if missing:
            try:
                with adapter.session():
                    captured = adapter.capture(x, missing)
            except CapabilityError:  # e.g. TorchScript: no hooks, shapes stay unknown
                captured = {}
            layers = [
                replace(layer, output_shape=(None, *captured[layer.name].shape[1:]))
                if layer.name in captured
                else layer
                for layer in layers
            ]
    name = getattr(model, "original_name", None) or type(model).__name__  # TorchScript's class
    return Summary(adapter.backend, name, layers, input_shape)
