"""Integrated Gradients (Sundararajan et al., 2017).

attribution = (x - b) * sum_k w_k * grad f(b + a_k (x - b)), with the
quadrature nodes a_k and weights w_k of the `integration` rule (named so, not
`method`, to stay clear of `explain`'s own `method` argument). Nodes match
Captum's for every rule; for "riemann_trapezoid" the weights are the true
trapezoid rule (they sum to 1), where Captum's sum to (n-1)/n.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import numpy as np

from xai_core import Attribution, BatchedModel, Explainer, hookimpl
from xai_core.errors import OptionError
from xai_core.explainer import (
    check_choice,
    check_float_layer,
    check_held,
    check_layer_option,
    check_positive_int,
    chosen_layer,
)
from xai_core.first_pass import resolved
from xai_core.inputs import InputLayout
from xai_core.validation import broadcast_baselines

RULES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


#: up to here NumPy's leggauss (Captum's own: bit for bit the same nodes); beyond, its
#: eigenvalue solve is O(n^3) (20,000 nodes: tens of minutes), so Newton's method on the
#: three-term recurrence is used, O(n^2) (20,000 nodes: about a second)
LEGGAUSS_MAX = 100
#: the most Gauss-Legendre nodes (about 8 s); the Riemann rules take any count in O(n)
GAUSS_MAX = 50_000


def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes (ascending) and weights on [-1, 1] for large n: Newton's
    method from Tricomi's approximation, on the nodes in [0, 1) (the rest by symmetry)."""
    half = (n + 1) // 2
    k = np.arange(1, half + 1)
    x = (1 - 1 / (8 * n**2) + 1 / (8 * n**3)) * np.cos(np.pi * (4 * k - 1) / (4 * n + 2))

    def legendre(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p0, p1 = np.ones_like(x), x.copy()
        for j in range(2, n + 1):
            p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
        return p1, n * (x * p1 - p0) / (x * x - 1)  # P_n and its derivative

    for _ in range(10):  # converges in 2-3 steps from this start
        value, slope = legendre(x)
        step = value / slope
        x = x - step
        if np.max(np.abs(step)) < 1e-15:
            break
    _, slope = legendre(x)
    w = 2 / ((1 - x * x) * slope * slope)
    return (
        np.concatenate([-x, x[::-1][n % 2 :]]),
        np.concatenate([w, w[::-1][n % 2 :]]),
    )


@functools.lru_cache(maxsize=64)
def quadrature(rule: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(nodes in [0, 1], weights) of an n-point rule on [0, 1]; cached (leggauss costs ms)."""
    if rule == "gausslegendre":
        if n > GAUSS_MAX:
            raise OptionError(
                f"n_steps={n} is more Gauss-Legendre nodes than xai_core computes "
                f"({GAUSS_MAX}; their cost grows as n^2). Gauss-Legendre is exact for "
                "polynomials of degree 2n-1, so a few hundred nodes are plenty; for more "
                "steps use integration='riemann_trapezoid' (or another Riemann rule)."
            )
        x, w = np.polynomial.legendre.leggauss(n) if n <= LEGGAUSS_MAX else gauss_legendre(n)
        return 0.5 * (1 + x), 0.5 * w
    if rule == "riemann_trapezoid":
        weights = np.full(n, 1.0 / (n - 1))
        weights[[0, -1]] /= 2
        return np.linspace(0, 1, n), weights
    nodes = {
        "riemann_left": np.linspace(0, 1 - 1 / n, n),
        "riemann_right": np.linspace(1 / n, 1, n),
        "riemann_middle": np.linspace(1 / (2 * n), 1 - 1 / (2 * n), n),
    }[rule]
    return nodes, np.full(n, 1.0 / n)


def selected_outputs(model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> np.ndarray:
    """f(inputs)[i, target[i]] as float64."""
    out = model.forward(inputs)
    return out[np.arange(len(inputs)), target].astype(np.float64)


def baseline_rows(model: BatchedModel, baselines: np.ndarray) -> np.ndarray:
    """The rows whose outputs give f(baselines): one when every sample shares it."""
    shared = len(baselines) > 1 and not model.batch_kwargs  # rows carry their own kwargs
    return baselines[:1] if shared and np.all(baselines == baselines[:1]) else baselines


def baseline_outputs(
    model: BatchedModel, rows: np.ndarray, target: np.ndarray, outputs: np.ndarray | None
) -> np.ndarray:
    """f(baselines)[i, target[i]] from the outputs of `baseline_rows` (None: not known yet,
    a forward pass of its own)."""
    out = model.forward(rows) if outputs is None else outputs
    picked = out[0, target] if len(rows) == 1 else out[np.arange(len(target)), target]
    return np.broadcast_to(picked, target.shape).astype(np.float64)


class IntegratedGradients(Explainer):
    neuron_option = True
    name = "integrated_gradients"
    defaults = {
        "baselines": 0.0,
        "n_steps": 50,
        "integration": "gausslegendre",
        "multiply_by_inputs": True,
        "layer": None,
        "attribute_to_layer_input": False,
    }
    requires = ("gradients",)
    target_from_first_pass = True

    def validate(self) -> None:
        check_choice("integration", self.options["integration"], RULES)
        minimum = 2 if self.options["integration"] == "riemann_trapezoid" else 1
        check_positive_int("n_steps", self.options["n_steps"], minimum)
        if not isinstance(self.options["multiply_by_inputs"], bool):
            raise OptionError("multiply_by_inputs must be True or False.")
        check_layer_option(self.options["layer"], several=True)

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> Attribution:
        # nodes, weights and their float32 copy are held whole; the path is cut in chunks
        check_held("n_steps", self.options["n_steps"], 24, "the quadrature nodes and weights")
        quadrature(self.options["integration"], self.options["n_steps"])  # refuses now
        baselines = broadcast_baselines(self.options["baselines"], inputs)
        layer = chosen_layer(self.options)
        if layer is None:  # the path runs through input space
            model.check_differentiable()  # ids and bools: say so first, naming embeddings
            start_point, end_point = baselines, inputs
            at_baselines = baseline_rows(model, baselines)

            def groups(path: Callable, n: int) -> Iterator:
                # f(baselines) (the convergence delta) rides in the first gradient call
                return model.gradient_groups(n, path, target, like=inputs, extra=at_baselines)

        elif isinstance(layer, tuple):  # several layers move together, as Captum's
            # LayerIntegratedGradients given a list: their outputs packed side by side
            model.check_layers(list(layer))
            at_inputs = model.capture(inputs, list(layer))
            for name in layer:
                check_float_layer(name, at_inputs[name])
            # the layers' outputs packed side by side, as several inputs are
            pack = InputLayout(
                "tuple",
                layer,
                tuple(at_inputs[name].shape[1:] for name in layer),
                tuple(at_inputs[name].dtype for name in layer),
            )
            at_baselines = model.capture(baselines, list(layer))
            start_point = pack.pack([at_baselines[name] for name in layer])
            end_point = pack.pack([at_inputs[name] for name in layer])

            def groups(path: Callable, n: int) -> Iterator:
                return model.replaced_layer_gradient_groups(
                    inputs, layer, n, path, target, like=end_point, layers=pack
                )

        else:  # Captum's LayerIntegratedGradients: the model runs on the real inputs while
            # the layer's output moves from its value on the baselines to that on the inputs
            model.check_layers([layer])
            start_point = model.capture(baselines, [layer])[layer]
            end_point = model.capture(inputs, [layer])[layer]
            check_float_layer(layer, end_point)

            def groups(path: Callable, n: int) -> Iterator:
                return model.replaced_layer_gradient_groups(
                    inputs, layer, n, path, target, like=end_point
                )

        nodes, weights = quadrature(self.options["integration"], self.options["n_steps"])
        delta = end_point - start_point
        steps = nodes.astype(end_point.dtype).reshape(-1, *([1] * end_point.ndim))

        def path_points(start: int, stop: int) -> np.ndarray:
            return start_point + steps[start:stop] * delta

        total = np.zeros(end_point.shape, np.float64)
        for start, stop, grads in groups(path_points, len(nodes)):
            w = weights[start:stop].astype(grads.dtype)
            # einsum, not `w @ grads`: BLAS threads woken here spin against the framework's own
            # on small machines (measured: layer IG on BERT 1.6x slower with the matmul)
            total += np.einsum("k,k...->...", w, grads)
        attributions = total * delta if self.options["multiply_by_inputs"] else total
        target = resolved(target)  # known now: the first gradient pass gave the predictions
        if layer is None:
            f_baselines = baseline_outputs(model, at_baselines, target, model.extra_outputs)
        else:  # the baselines' outputs came with their layer capture
            f_baselines = selected_outputs(model, baselines, target)
        gap = selected_outputs(model, inputs, target) - f_baselines
        convergence = (total * delta).reshape(len(inputs), -1).sum(axis=1) - gap
        attributions = attributions.astype(end_point.dtype)
        if isinstance(layer, tuple):  # one array per layer, by name
            attributions = dict(zip(layer, pack.unpack(attributions, cast=False)))
        return Attribution(
            attributions=attributions,
            convergence_delta=convergence,
            layer=list(layer) if isinstance(layer, tuple) else layer,
        )


@hookimpl
def xai_explainers() -> list[type[Explainer]]:
    return [IntegratedGradients]
