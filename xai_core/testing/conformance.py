"""Checks every `ModelAdapter` must pass, like scikit-learn's `check_estimator`.

A backend author subclasses `AdapterConformance` in a test file, says how to
build a model and inputs, and inherits one pytest test per check:

    class TestMyBackend(AdapterConformance):
        def make_model(self): return MyModel()
        def make_inputs(self): return np.random.default_rng(0).normal(size=(4, 6))
        layer = "hidden"                      # a layer to capture (None: no layer support)
        expected_failures = {"check_gradients": "forward-only service"}

Each check is also a plain function `check_xxx(case)` on a `Case`, for use
outside pytest. The checks compare against references that do not use the
adapter: finite differences for gradients, the author's direct computation
for captured layers, a state snapshot before and after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import xai_core
from xai_core.adapter import ModelAdapter
from xai_core.errors import (
    CapabilityError,
    InputError,
    TargetError,
    UnknownLayerError,
    UnknownMethodError,
)
from xai_core.explainer import Attribution, Explainer
from xai_core.registry import hookimpl


@dataclass
class Case:
    """What the checks need to know about one backend and model."""

    model: Any
    inputs: np.ndarray
    layer: str | None = None
    expected_activation: Callable[[Any, np.ndarray, str], np.ndarray] | None = None
    model_state: Callable[[Any], Any] | None = None
    rtol: float = 1e-4
    fd_step: float = 1e-3
    #: inputs the model must reject (default: the last axis one shorter)
    wrong_inputs: np.ndarray | None = None

    def adapter(self) -> ModelAdapter:
        return xai_core.adapt(self.model)


def _close(actual: np.ndarray, expected: np.ndarray, rtol: float, what: str) -> None:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(np.abs(expected).max(), 1e-6)
    err = np.abs(actual - expected).max() / scale
    assert err <= rtol, f"{what}: max relative error {err:.2e} > {rtol:.0e}"


def check_adapter_found(case: Case) -> None:
    """`xai_core.adapt` finds the backend through its entry point and keeps the model."""
    adapter = case.adapter()
    assert isinstance(adapter, ModelAdapter), f"adapt returned {type(adapter).__name__}"
    assert adapter.model is case.model, "adapter.model must be the user's model object"
    assert isinstance(adapter.backend, str) and adapter.backend != "abstract", "set `backend`"


def check_forward(case: Case) -> None:
    """Forward returns a finite float (batch, k) array, deterministic and chunk-independent."""
    adapter = case.adapter()
    x = case.inputs
    with adapter.session():
        out = adapter.forward(x)
        again = adapter.forward(x)
        rows = [adapter.forward(x[i : i + 1]) for i in range(len(x))]
    assert isinstance(out, np.ndarray), f"forward returned {type(out).__name__}, not np.ndarray"
    assert np.issubdtype(out.dtype, np.floating), f"forward returned dtype {out.dtype}"
    assert out.ndim in (1, 2) and out.shape[0] == len(x), f"forward shape {out.shape}"
    assert np.isfinite(out).all(), "forward returned NaN or inf"
    _close(again, out, case.rtol, "forward twice")
    _close(np.concatenate(rows), out, case.rtol, "forward row by row vs batched")


def _scalar_outputs(adapter: ModelAdapter, x: np.ndarray, target: np.ndarray) -> np.ndarray:
    out = adapter.forward(x)
    out = out.reshape(len(x), -1)
    return out[np.arange(len(x)), target].astype(np.float64)


def check_gradients(case: Case) -> None:
    """Input gradients equal central finite differences of `forward`."""
    adapter = case.adapter()
    x = np.asarray(case.inputs, np.float64)
    rng = np.random.default_rng(0)
    with adapter.session():
        k = adapter.forward(x[:1]).reshape(1, -1).shape[1]
        for t in sorted({0, k - 1}):
            target = np.full(len(x), t)
            grads = adapter.gradients(x.astype(np.float32), target)
            assert grads.shape == x.shape, f"gradients shape {grads.shape} != inputs {x.shape}"
            flat = x.reshape(len(x), -1)
            coords = rng.choice(flat.shape[1], size=min(16, flat.shape[1]), replace=False)
            fd = np.zeros((len(x), len(coords)))
            for j, c in enumerate(coords):
                up, down = flat.copy(), flat.copy()
                up[:, c] += case.fd_step
                down[:, c] -= case.fd_step
                f_up = _scalar_outputs(adapter, up.reshape(x.shape).astype(np.float32), target)
                f_dn = _scalar_outputs(adapter, down.reshape(x.shape).astype(np.float32), target)
                fd[:, j] = (f_up - f_dn) / (2 * case.fd_step)
            analytic = grads.reshape(len(x), -1)[:, coords]
            err = np.abs(analytic - fd).max()
            tol = 1e-2 * max(np.abs(fd).max(), 1e-2)
            assert err <= tol, f"gradients vs finite differences (target {t}): error {err:.2e}"


def check_layers(case: Case) -> None:
    """`layers()` lists uniquely named layers with kind and parameter count."""
    if case.layer is None:
        return
    layers = case.adapter().layers()
    assert layers, "layers() returned nothing"
    names = [layer.name for layer in layers]
    assert len(set(names)) == len(names), f"layer names are not unique: {names}"
    for layer in layers:
        assert isinstance(layer.kind, str) and layer.kind, f"{layer.name}: kind missing"
        assert isinstance(layer.n_params, (int, np.integer)) and layer.n_params >= 0
    assert case.layer in names, f"{case.layer!r} not among layers() {names}"


def check_capture(case: Case) -> None:
    """Captured outputs equal the author's direct computation; unknown names are errors."""
    if case.layer is None:
        return
    adapter = case.adapter()
    x = case.inputs
    with adapter.session():
        captured = adapter.capture(x, [case.layer])[case.layer]
        halves = [adapter.capture(part, [case.layer])[case.layer] for part in (x[:1], x[1:])]
    assert captured.shape[0] == len(x), f"capture is not batch first: {captured.shape}"
    _close(np.concatenate(halves), captured, case.rtol, "capture in two chunks vs one")
    if case.expected_activation is not None:
        expected = case.expected_activation(case.model, x, case.layer)
        _close(captured, expected, case.rtol, f"capture of {case.layer!r} vs direct computation")
    try:
        adapter.capture(x, ["no-such-layer"])
    except UnknownLayerError as exc:
        assert case.layer in str(exc), "UnknownLayerError must list the model's layer names"
    else:
        raise AssertionError("capture of an unknown layer must raise UnknownLayerError")


def check_layer_gradients(case: Case) -> None:
    """`layer_gradients` returns the captured activation and a gradient of its shape."""
    if case.layer is None:
        return
    adapter = case.adapter()
    x = case.inputs
    with adapter.session():
        target = np.zeros(len(x), dtype=np.int64)
        activation, grad = adapter.layer_gradients(x, target, case.layer)
        captured = adapter.capture(x, [case.layer])[case.layer]
    _close(activation, captured, case.rtol, "layer_gradients activation vs capture")
    assert grad.shape == activation.shape, f"gradient {grad.shape} vs activation {activation.shape}"
    assert np.isfinite(grad).all(), "layer gradient has NaN or inf"


def check_errors(case: Case) -> None:
    """User mistakes raise the documented XaiError subclasses."""
    x = np.asarray(case.inputs, np.float32)
    bad = x.copy()
    bad.flat[0] = np.nan
    expectations: list[tuple[Any, type, dict[str, Any]]] = [
        (bad, InputError, {}),
        (x[:0], InputError, {}),
        (x[..., :-1] if case.wrong_inputs is None else case.wrong_inputs, InputError, {}),
        (x, TargetError, {"target": 10_000}),
        (x, TargetError, {"target": [0] * (len(x) + 1)}),
    ]
    for inputs, error, kwargs in expectations:
        try:
            xai_core.explain(case.model, inputs, "_conformance_forward", **kwargs)
        except error:
            continue
        raise AssertionError(f"{kwargs or inputs.shape} should raise {error.__name__}")
    try:
        xai_core.explain(case.model, x, "no-such-method")
    except UnknownMethodError:
        pass
    else:
        raise AssertionError("an unknown method must raise UnknownMethodError")


def check_state_restored(case: Case) -> None:
    """The model's state is the same after explanations, failed ones included."""
    if case.model_state is None:
        return
    before = case.model_state(case.model)
    x = np.asarray(case.inputs, np.float32)
    calls: list[dict[str, Any]] = [
        {"method": "_conformance_forward"},
        {"method": "_conformance_forward", "target": 10_000},
        {"method": "_conformance_fail_halfway"},
    ]
    if case.layer is not None:
        calls.append({"method": "_conformance_capture", "layers": [case.layer]})
        calls.append({"method": "_conformance_capture", "layers": [case.layer, "no-such-layer"]})
    for kwargs in calls:
        try:
            xai_core.explain(case.model, x, **kwargs)
        except (xai_core.XaiError, _HalfwayFailure):
            pass
        after = case.model_state(case.model)
        assert after == before, f"model state changed by {kwargs}: {before} -> {after}"


def check_backward_rules(case: Case) -> None:
    """The optional `backward_rules` capability (`ModelAdapter.rule_gradients`): a rule
    that returns each layer's own input gradient gives the plain gradients; a rule sees
    one call per layer call, with input and output batch first; a rule that raises leaves
    the model as it was. A backend without it (`layer_kinds` raises `CapabilityError`)
    passes: it is optional."""
    from .. import rules as rule_kinds

    adapter = case.adapter()
    try:
        kinds = adapter.layer_kinds()
    except CapabilityError:
        return
    assert isinstance(kinds, dict), "layer_kinds() must return a dict name -> kind"
    unknown = {k for k in kinds.values() if k is not None} - rule_kinds.LAYER_KINDS
    assert not unknown, f"layer_kinds() names kinds that rules do not know: {unknown}"
    x = np.asarray(case.inputs, np.float32)
    target = np.zeros(len(x), dtype=np.int64)
    seen: list[tuple[str, tuple, tuple]] = []

    def own_gradient(ops: Any, call: Any) -> Any:
        seen.append((call.name, tuple(call.x.shape), tuple(call.y.shape)))
        return call.grad_in

    # every kind; a backend may refuse some (CapabilityError): then the kinds the built-in
    # methods rule, which every backend with the capability must take
    every_kind = dict.fromkeys(sorted(rule_kinds.LAYER_KINDS - {"reshape"}), own_gradient)
    with adapter.session():
        plain = adapter.gradients(x, target)
        try:
            ruled, outputs = adapter.rule_gradients(x, target, every_kind)
        except CapabilityError:
            seen.clear()
            every_kind = dict.fromkeys(("relu", "nonlinear", "softmax", "maxpool"), own_gradient)
            ruled, outputs = adapter.rule_gradients(x, target, every_kind)
        forward = adapter.forward(x)
    _close(ruled, plain, case.rtol, "rule_gradients with each layer's own gradient vs gradients")
    _close(
        np.asarray(outputs).reshape(len(x), -1), forward.reshape(len(x), -1), case.rtol, "outputs"
    )
    ruled_layers = [name for name, kind in kinds.items() if kind in every_kind]
    if ruled_layers:
        assert seen, f"no rule was called, though layer_kinds() lists {ruled_layers}"
    for name, x_shape, y_shape in seen:
        # (a traced pass sees the batch axis as None)
        assert x_shape[0] in (len(x), None) and y_shape[0] in (len(x), None), name
    if case.model_state is not None and seen:
        before = case.model_state(case.model)

        def broken(ops: Any, call: Any) -> Any:
            raise _HalfwayFailure("a rule that fails")

        try:
            with adapter.session():
                adapter.rule_gradients(x, target, dict.fromkeys(every_kind, broken))
        except _HalfwayFailure:
            pass
        else:
            raise AssertionError("a rule's exception must reach the caller")
        after = case.model_state(case.model)
        assert after == before, f"model state changed by a failing rule: {before} -> {after}"


class _HalfwayFailure(RuntimeError):
    pass


class _ForwardProbe(Explainer):
    name = "_conformance_forward"

    def explain(self, model, inputs, target):
        return Attribution(attributions=np.zeros_like(inputs))


class _FailHalfway(Explainer):
    """Does some real work through the adapter, then fails like a buggy explainer would."""

    name = "_conformance_fail_halfway"

    def explain(self, model, inputs, target):
        try:
            model.gradients(inputs, target)
        except CapabilityError:
            model.forward(inputs)
        raise _HalfwayFailure("explainer failed half-way (on purpose)")


class _CaptureProbe(Explainer):
    name = "_conformance_capture"
    defaults = {"layers": None}

    def explain(self, model, inputs, target):
        return Attribution(activations=model.capture(inputs, self.options["layers"]))


class _ProbePlugin:
    """Explainers that exist only while the checks run."""

    @hookimpl
    def xai_explainers(self):
        return [_ForwardProbe, _FailHalfway, _CaptureProbe]


CHECKS: list[Callable[[Case], None]] = [
    check_adapter_found,
    check_forward,
    check_gradients,
    check_layers,
    check_capture,
    check_layer_gradients,
    check_errors,
    check_state_restored,
]


def check_adapter(case: Case, skip: dict[str, str] | None = None) -> None:
    """Run every check on one case (outside pytest); `skip` maps check names to reasons."""
    skip = skip or {}
    plugin = _ProbePlugin()
    xai_core.register(plugin, name="xai_core.testing")
    try:
        for check in CHECKS:
            if check.__name__ not in skip:
                check(case)
    finally:
        xai_core.unregister(plugin)


class AdapterConformance:
    """Subclass in a pytest file; every check becomes a test of your backend."""

    layer: str | None = None
    rtol: float = 1e-4
    #: check name -> reason, for capabilities the backend declares it lacks
    expected_failures: dict[str, str] = {}

    def make_model(self) -> Any:
        raise NotImplementedError("return a model of your framework")

    def make_inputs(self) -> np.ndarray:
        raise NotImplementedError("return a small batch (>= 2 samples) for the model")

    def make_wrong_inputs(self) -> np.ndarray | None:
        """Inputs of a shape the model rejects (None: the last axis one shorter)."""
        return None

    def expected_activation(self, model: Any, inputs: np.ndarray, layer: str) -> np.ndarray | None:
        """Compute `layer`'s output without the adapter (None: skip that comparison)."""
        return None

    def model_state(self, model: Any) -> Any:
        """A comparable snapshot of everything an explanation must not change."""
        return None

    def _run(self, check: Callable[[Case], None]) -> None:
        import pytest

        reason = self.expected_failures.get(check.__name__)
        model = self.make_model()
        inputs = np.asarray(self.make_inputs())
        direct = self.expected_activation
        has_direct = self.layer is not None and direct(model, inputs, self.layer) is not None
        case = Case(
            model=model,
            inputs=inputs,
            layer=self.layer,
            expected_activation=direct if has_direct else None,
            model_state=self.model_state if self.model_state(model) is not None else None,
            rtol=self.rtol,
            wrong_inputs=self.make_wrong_inputs(),
        )
        plugin = _ProbePlugin()
        xai_core.register(plugin, name="xai_core.testing")
        try:
            if reason is None:
                check(case)
                return
            with pytest.raises((AssertionError, CapabilityError)):
                check(case)
            pytest.xfail(reason)
        finally:
            xai_core.unregister(plugin)

    def test_adapter_found(self) -> None:
        self._run(check_adapter_found)

    def test_forward(self) -> None:
        self._run(check_forward)

    def test_gradients(self) -> None:
        self._run(check_gradients)

    def test_layers(self) -> None:
        self._run(check_layers)

    def test_capture(self) -> None:
        self._run(check_capture)

    def test_layer_gradients(self) -> None:
        self._run(check_layer_gradients)

    def test_errors(self) -> None:
        self._run(check_errors)

    def test_state_restored(self) -> None:
        self._run(check_state_restored)

    def test_backward_rules(self) -> None:
        self._run(check_backward_rules)
