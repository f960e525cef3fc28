"""`ModelAdapter` for `torch.nn.Module`.

During an explanation the model is in eval mode; afterwards its own mode is
back, every hook we added is gone (removed in `finally`), no parameter has a
`.grad`, and `requires_grad` flags are untouched: gradients are taken with
`torch.autograd.grad` with respect to the inputs only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from xai_core import LayerInfo, ModelAdapter
from xai_core.backend_utils import (
    IN_PLACE,
    call_leaving_input,
    check_parameter_shapes,
    copy_of,
    copy_structure,
    eval_mode,
    flatten_capture,
    forward_hooks,
    gradient_not_reached,
    input_name,
    layer_element,
    layer_gradients_result,
    layer_input,
    not_one_tensor,
    one_hot,
    prepare_call,
    replacement_mismatch,
    several_layers,
    stored_output,
    target_of_pass,
)
from xai_core.errors import InputError
from xai_core.fingerprint import array_digest
from xai_core.inputs import ModelInputs
from xai_core.neuron_recording import RecordsLayerOutput

#: the prefix `torch.compile` gives every name inside the compiled module
_COMPILED_PREFIX = "_orig_mod."

#: per-module hook tables a library may add to (torch.nn.Module internals)
_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
)


class TorchAdapter(RecordsLayerOutput, ModelAdapter):
    backend = "torch"
    targets_from_pass = True

    def __init__(self, model: torch.nn.Module) -> None:
        # `torch.compile` returns a wrapper whose graph ignores hooks added later (Grad-CAM
        # would see zero gradients): explain the module inside, eagerly, with its own layer
        # names (the same weights, the same numbers to float precision)
        self.compiled = model if _is_compiled(model) else None
        model = model._orig_mod if self.compiled is not None else model
        super().__init__(model)
        ref = _first_tensor(model, "_parameters")
        if ref is None:
            ref = _first_tensor(model, "_buffers")
        self.device = ref.device if ref is not None else torch.device("cpu")
        self.dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
        self.on_cpu = self.device.type == "cpu"
        self._named: dict[str, torch.nn.Module] | None = None

    # -- lifecycle -----------------------------------------------------------
    def session(self) -> contextlib.AbstractContextManager[None]:
        training, plain = _modules_in_training(self.model)
        modes = _flags_switched_to_eval(training) if training and plain else None
        return self.recording_session(modes or eval_mode(self.model, training))

    @contextlib.contextmanager
    def foreign_session(self) -> Iterator[None]:
        """Everything a patching library can change on the modules, put back afterwards:
        hooks, new attributes and parameters (shap's `x`/`y`), `.grad` and
        `requires_grad` of every parameter, the grad mode. Meanwhile in-place
        activations are switched off and every leaf's output reaches its parent as a
        copy: shap's backward hooks make outputs views that an in-place op such as
        `out += identity` (every ResNet) may not modify."""
        if isinstance(self.model, torch.jit.ScriptModule):
            raise self.missing(
                "handing a TorchScript module to a library that patches modules (shap's "
                "DeepExplainer adds hooks, which TorchScript forbids)",
                "explain the Python nn.Module, or use gradient_shap",
            )
        modules = list(self.model.modules())
        hooks = [
            (m, {d: dict(getattr(m, d)) for d in _HOOK_DICTS if hasattr(m, d)}) for m in modules
        ]
        members = [(m, set(vars(m)), dict(m._parameters), dict(m._buffers)) for m in modules]
        params = [(p, p.grad, p.requires_grad) for p in self.model.parameters()]
        in_place = [m for m in modules if getattr(m, "inplace", None) is True]
        grad_enabled = torch.is_grad_enabled()
        wrapped = []
        try:
            for m in in_place:
                m.inplace = False
            for parent in modules:
                for name, child in list(parent._modules.items()):
                    if child is not None and _computes(child):
                        wrapped.append((parent, name, child))
                        parent._modules[name] = _CopiedOutput(child)
            yield
        finally:
            for parent, name, child in wrapped:
                parent._modules[name] = child
            for m in in_place:
                m.inplace = True
            for m, saved in hooks:
                for name, content in saved.items():
                    current = getattr(m, name)
                    current.clear()
                    current.update(content)
            for m, names, parameters, buffers in members:
                m._parameters.clear()
                m._parameters.update(parameters)
                m._buffers.clear()
                m._buffers.update(buffers)
                for extra in set(vars(m)) - names:
                    object.__delattr__(m, extra)
            for p, grad, requires_grad in params:
                p.grad = grad
                p.requires_grad_(requires_grad)
            torch.set_grad_enabled(grad_enabled)

    def to_numpy(self, inputs: Any) -> np.ndarray:
        if isinstance(inputs, torch.Tensor):
            return _numpy(inputs)
        return np.asarray(inputs)

    def to_framework(self, inputs: np.ndarray) -> torch.Tensor:
        return self._tensor(inputs)

    def framework_version(self) -> str:
        return torch.__version__

    def framework_model(
        self, constant_kwargs: dict[str, Any], row_kwargs: dict[str, np.ndarray]
    ) -> torch.nn.Module:
        """Always a wrapper: it also picks `logits` from a HuggingFace `ModelOutput`."""

        def tensor(value: Any) -> Any:
            return self._tensor(value) if isinstance(value, np.ndarray) else value

        return _BoundCall(
            self.model,
            {k: tensor(v) for k, v in constant_kwargs.items()},
            {k: tensor(v) for k, v in row_kwargs.items()},
            self.select_output,
        )

    # -- computation -----------------------------------------------------------
    def _tensor(self, inputs: np.ndarray, requires_grad: bool = False) -> torch.Tensor:
        flags = inputs.flags
        if not (flags.c_contiguous and flags.writeable and inputs.dtype.isnative):
            # torch warns on read-only buffers and rejects non-native byte order
            inputs = np.ascontiguousarray(inputs, dtype=inputs.dtype.newbyteorder("="))
            inputs = inputs if inputs.flags.writeable else inputs.copy()
        x = torch.from_numpy(inputs)  # shares memory: no copy on the CPU
        floating = x.is_floating_point()
        if (floating and x.dtype != self.dtype) or not self.on_cpu:
            x = x.to(device=self.device, dtype=self.dtype if floating else x.dtype)
        return x.requires_grad_(True) if requires_grad and floating else x

    def _prepare(
        self, inputs: Any, requires_grad: bool = False
    ) -> tuple[tuple, dict[str, Any], list[torch.Tensor]]:
        """(args, kwargs, attributed tensors) for one call; integer ids stay integers."""

        def differentiate(t: torch.Tensor) -> None:
            if t.is_floating_point():
                t.requires_grad_(True)

        return prepare_call(inputs, self._tensor, requires_grad, differentiate)

    def _call(self, args: tuple, kwargs: dict[str, Any], tensors: Sequence = ()) -> torch.Tensor:
        watched = [t for t in [*args, *kwargs.values()] if isinstance(t, torch.Tensor)]
        out = call_leaving_input(
            lambda: self.select_output(self.model(*args, **kwargs)),
            watched,
            lambda t: t._version,  # bumped by every in-place write
            lambda exc: any(t.requires_grad for t in tensors) and "in-place" in str(exc),
        )
        if not isinstance(out, torch.Tensor):
            raise InputError(
                f"the model returned a {type(out).__name__}, not a tensor; pick the output to "
                "explain with output=<index, key or function>."
            )
        return out

    @staticmethod
    def _seed(out: torch.Tensor, target: np.ndarray) -> torch.Tensor:
        """The output gradient that makes `grad` return d out[i, target[i]] / d ..."""
        seed = torch.from_numpy(one_hot(tuple(out.shape), target))
        return seed if seed.dtype == out.dtype and seed.device == out.device else seed.to(out)

    @classmethod
    def _kept_seed(cls, out: torch.Tensor, target: np.ndarray) -> torch.Tensor:
        """`_seed`, kept for small calls (by shape, dtype, device and targets): an explainer
        in a loop asks for the same one every time. Autograd may hand it back as the
        gradient itself (a model that returns its input): pass the gradient to `_own`."""
        target = np.asarray(target)
        if len(target) > _KEPT_SEED_ROWS:
            return cls._seed(out, target)
        key = (out.shape, out.dtype, out.device, target.tobytes())
        seed = _SEEDS.get(key)
        if seed is None:
            if len(_SEEDS) >= _KEPT_SEEDS:
                _SEEDS.clear()
            seed = _SEEDS[key] = cls._seed(out, target)
        return seed

    @staticmethod
    def _flat(out: torch.Tensor) -> torch.Tensor:
        return out if out.ndim == 2 else out.reshape(len(out), -1)

    def forward(self, inputs: Any) -> np.ndarray:
        with torch.no_grad():
            return _numpy(self._call(*self._prepare(inputs)))

    def gradients(self, inputs: Any, target: np.ndarray) -> Any:
        return self.gradients_and_outputs(inputs, target)[0]

    def gradients_and_outputs(self, inputs: Any, target: np.ndarray) -> tuple[Any, np.ndarray]:
        if type(inputs) is np.ndarray and inputs.dtype.kind == "f":
            return self._plain_gradients(inputs, target)
        args, kwargs, attributed = self._prepare(inputs, requires_grad=True)
        slots = inputs.attributed if isinstance(inputs, ModelInputs) else (0,)
        with _grad_on():
            raw = self._call(args, kwargs, attributed)
            target = target_of_pass(target, lambda: _numpy(raw))
            out = self._flat(raw)
            if not out.requires_grad:
                raise gradient_not_reached("the inputs")
            grads = _input_gradients(out, tuple(attributed), self._seed(out, target))
        for slot, g in zip(slots, grads):
            if g is None:
                raise gradient_not_reached(input_name(slot, isinstance(inputs, ModelInputs)))
        result = tuple(_numpy(g) for g in grads)
        return (result[0] if isinstance(inputs, np.ndarray) else result), _numpy(out)

    def _plain_gradients(self, inputs: np.ndarray, target: Any) -> tuple[np.ndarray, np.ndarray]:
        """`gradients_and_outputs` for one float array, the call explainers in a loop make:
        the same steps as the general path with nothing to unpack (measured: 0.8x its
        time on a 1-row MLP, where the framework itself takes ~100 us)."""
        x = self._tensor(inputs, requires_grad=True)
        with _grad_on():
            version = x._version
            try:
                raw = self.model(x)
            except Exception as exc:
                if "in-place" in str(exc):
                    raise InputError(IN_PLACE) from exc
                raise
            if x._version != version:
                raise InputError(IN_PLACE)
            if self.output is not None or type(raw) is not torch.Tensor:
                raw = self.select_output(raw)
                if not isinstance(raw, torch.Tensor):
                    return self._call((x,), {}, (x,))  # the general path's clear error
            outputs = _numpy(raw)
            target = target(outputs) if callable(target) else target  # (`target_of_pass`)
            flat = raw if raw.ndim == 2 else raw.reshape(len(raw), -1)
            if not flat.requires_grad:
                raise gradient_not_reached("the inputs")
            seed = self._kept_seed(flat, target)
            (grad,) = _input_gradients(flat, (x,), seed)
        if grad is None:
            raise gradient_not_reached(input_name(0, False))
        grad = _own(grad, seed)
        return _numpy(grad), outputs if outputs.ndim == 2 else outputs.reshape(len(outputs), -1)

    def rule_gradients(
        self, inputs: np.ndarray, target: np.ndarray, rules: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        from .rules import rules_applied

        with self.rules_then_layer_output(rules_applied(self._modules(), rules)):
            return self.gradients_and_outputs(inputs, target)

    def token_log_probs(self, logits: Any, positions: np.ndarray, tokens: np.ndarray) -> Any:
        at = torch.as_tensor(np.asarray(positions, np.int64), device=logits.device)
        chosen = torch.log_softmax(logits[:, at].float(), dim=-1)
        steps = torch.arange(len(tokens), device=logits.device)
        return chosen[:, steps, torch.as_tensor(np.asarray(tokens, np.int64), device=logits.device)]

    def layer_kinds(self) -> dict[str, str | None]:
        from .rules import kind_of

        return {name: kind_of(module) for name, module in self._leaves().items()}

    # -- layers ------------------------------------------------------------------
    def _leaves(self) -> dict[str, torch.nn.Module]:
        return {
            name: module
            for name, module in self._modules().items()
            if name and next(module.children(), None) is None
        }

    def _modules(self) -> dict[str, torch.nn.Module]:
        """Every module by name ("" is the model itself); walked once per adapter."""
        if self._named is None:
            self._named = dict(self.model.named_modules())
        return self._named

    def _module(self, name: str) -> torch.nn.Module:
        """A module by name; names of a `torch.compile`d model may keep its prefix."""
        modules = self._modules()
        if name not in modules and self.compiled is not None:
            return modules[name.removeprefix(_COMPILED_PREFIX)]
        return modules[name]

    def _known(self, name: str) -> bool:
        try:
            return bool(name) and self._module(name) is not None
        except KeyError:
            return False

    def layers(self) -> list[LayerInfo]:
        return [
            LayerInfo(
                name,
                type(m).__name__ if not isinstance(m, torch.jit.ScriptModule) else m.original_name,
                sum(p.numel() for p in m.parameters()),
                (None, int(m.out_features)) if hasattr(m, "out_features") else None,
            )
            for name, m in self._leaves().items()
        ]

    def layer_parameters(self, layer: str) -> list[np.ndarray]:
        self.check_layers([layer])
        return [_numpy(p.detach()).copy() for p in self._module(layer).parameters()]

    def fingerprint(self) -> str:
        """Every parameter and buffer (BatchNorm statistics too), in order; names are left
        out, so a wrapper around the same weights is the same model."""
        return array_digest(_numpy(t.detach()) for t in self.model.state_dict().values())

    def with_parameters(
        self, replaced: dict[str, list[np.ndarray]], in_place: bool = False
    ) -> TorchAdapter:
        self.check_layers(list(replaced))
        copy = self if in_place else TorchAdapter(copy_of(self.model, "PyTorch"))
        with torch.no_grad():
            for name, arrays in replaced.items():
                params = list(copy._module(name).parameters())
                check_parameter_shapes(name, [tuple(p.shape) for p in params], arrays)
                for p, value in zip(params, arrays):
                    p.copy_(torch.as_tensor(np.asarray(value), dtype=p.dtype, device=p.device))
        return copy

    def _base(self, name: str) -> str:
        """The module a layer name refers to: without ":input" or an "[i]" element path."""
        return layer_element(layer_input(name)[0], self._known)[0]

    def check_layers(self, names: Sequence[str]) -> None:
        # any named module may be captured, not only leaves; "name:input" is its input,
        # "name[0]" one tensor of its tuple output
        names = [self._base(n) for n in names]
        if not all(self._known(n) for n in names):
            leaves = self._leaves()
            blocks = [n for n in self._modules() if n and n not in leaves]
            super().check_layers([n for n in names if not self._known(n)], blocks)

    @contextlib.contextmanager
    def _hooked(
        self,
        names: Sequence[str],
        keep_graph: bool,
        replacement: dict[str, torch.Tensor] | None = None,
    ) -> Iterator[dict[str, torch.Tensor]]:
        self.check_layers(names)
        if isinstance(self.model, torch.jit.ScriptModule):
            raise self.missing(
                "layer hooks on a TorchScript module", "explain the Python nn.Module instead"
            )

        def keep(name: str, output: Any) -> tuple[Any, Any]:
            swap = None if replacement is None else replacement.get(name)
            if not isinstance(output, torch.Tensor):
                if keep_graph or swap is not None:
                    raise not_one_tensor(name, output)
                # captured as it is (LSTM, attention): copies of every tensor in it
                return copy_structure(output, _detached_copy, _is_tensor), None
            if swap is not None:  # the layer's output is what we say it is
                if tuple(swap.shape) != tuple(output.shape):
                    raise replacement_mismatch(name, output.shape, swap.shape)
                return swap, swap.clone()
            if keep_graph:  # gradients at the real output; what follows gets a copy
                if not output.requires_grad:  # e.g. frozen weights: make it a leaf to watch
                    output = output.detach().requires_grad_(True)
                return output, output.clone()
            # a copy the next in-place op (ReLU(inplace=True), out += identity) cannot touch
            return output.detach().clone(), None

        bases = {self._base(n) for n in names}
        with forward_hooks(
            {b: self._module(b) for b in bases},
            names,
            lambda m, hook: m.register_forward_hook(hook),
            keep,
            lambda m, hook: m.register_forward_pre_hook(hook),
            lambda n: layer_element(n, self._known),
        ) as store:
            yield store

    def capture(self, inputs: Any, layers: Sequence[str]) -> dict[str, np.ndarray]:
        return self.forward_and_capture(inputs, layers)[1]

    def forward_and_capture(
        self, inputs: Any, layers: Sequence[str]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        with self._hooked(layers, keep_graph=False) as store, torch.no_grad():
            out = self._call(*self._prepare(inputs))
            captured: dict[str, Any] = {}
            for name in layers:
                captured.update(flatten_capture(name, stored_output(store, name), _is_tensor))
            return _numpy(out), {key: _numpy(t) for key, t in captured.items()}

    def layer_gradients_and_outputs(
        self,
        inputs: Any,
        target: Any,
        layer: str | tuple[str, ...],
        replacement: Any = None,
    ) -> tuple[Any, Any, np.ndarray]:
        names, swaps = several_layers(layer, replacement, self._swap)
        with self._hooked(names, keep_graph=True, replacement=swaps) as store:
            with _grad_on():
                raw = self._call(*self._prepare(inputs))
                target = target_of_pass(target, lambda: _numpy(raw))
                out = self._flat(raw)
                activations = [stored_output(store, name) for name in names]
                grads: Sequence[Any] = [None] * len(names)
                if out.requires_grad:
                    grads = _input_gradients(out, tuple(activations), self._seed(out, target))
        acts, grads = layer_gradients_result(layer, names, activations, grads, _numpy)
        return acts, grads, _numpy(out)

    def _swap(self, replacement: np.ndarray) -> torch.Tensor:
        swap = torch.from_numpy(np.ascontiguousarray(replacement)).to(self.device)
        swap = swap.to(self.dtype) if swap.is_floating_point() else swap
        return swap.requires_grad_(True)


class _BoundCall(torch.nn.Module):
    """`model(x, **kwargs)` with the explained output picked, as one module whose forward
    takes one tensor (see `ModelAdapter.framework_model`); the model is its only child, so
    a library that hooks every module hooks the model's own."""

    def __init__(self, model: torch.nn.Module, constant: dict, rows: dict, pick: Any) -> None:
        super().__init__()
        self.model = model
        self._constant, self._rows, self._pick = constant, rows, pick

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        repeated = {k: v.expand(len(x), *v.shape[1:]) for k, v in self._rows.items()}
        out = self._pick(self.model(x, **self._constant, **repeated))
        # shap explains (N, outputs): a segmentation map's outputs are its flat indices,
        # which is what targets index
        return out if out.ndim <= 2 else out.reshape(len(out), -1)


def _computes(module: torch.nn.Module) -> bool:
    """A leaf that computes (has a forward): not an empty ModuleList or ModuleDict, which
    their parents iterate or index and a wrapper would break (ConvNeXt's empty stages)."""
    return (
        next(module.children(), None) is None
        and type(module).forward is not torch.nn.Module.forward
    )


def _is_compiled(model: Any) -> bool:
    """Whether `model` is what `torch.compile(module)` returned."""
    return type(model).__name__ == "OptimizedModule" and isinstance(
        getattr(model, "_orig_mod", None), torch.nn.Module
    )


class _CopiedOutput(torch.nn.Module):
    """A leaf whose output reaches the rest of the model as a copy (see `foreign_session`)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.inner(*args, **kwargs)
        return out.clone() if isinstance(out, torch.Tensor) else out

    def __getattr__(self, name: str) -> Any:  # parents read their children's attributes
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)


def _is_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor)


def _detached_copy(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone()


_HALF = (torch.float16, torch.bfloat16)
#: output gradients kept for calls of up to this many rows, at most this many of them
_KEPT_SEED_ROWS, _KEPT_SEEDS = 64, 64
_SEEDS: dict[tuple, torch.Tensor] = {}

_NOTHING = contextlib.nullcontext()


def _grad_on() -> contextlib.AbstractContextManager[Any]:
    """`torch.enable_grad()` where grad mode is off (inside the user's `no_grad`), else
    nothing: entering and leaving `enable_grad` costs ~2% of a 1-row call."""
    return _NOTHING if torch.is_grad_enabled() else torch.enable_grad()


#: what `torch.autograd.grad` calls once it has checked its arguments (None: not there)
_RUN_BACKWARD = getattr(torch.autograd.graph, "_engine_run_backward", None)


def _input_gradients(
    out: torch.Tensor, inputs: tuple[torch.Tensor, ...], seed: torch.Tensor
) -> tuple[torch.Tensor | None, ...]:
    """`torch.autograd.grad(out, inputs, grad_outputs=seed, allow_unused=True)`.

    For plain tensors and a seed made here (`_seed`: the output's shape, dtype and
    device), the engine is called the way `torch.autograd.grad` calls it once its
    checks pass: those checks re-validate a seed we built and were a fifth of a 1-row
    saliency call (17 of 66 us on the MLP twin). Tensor subclasses (their own
    `__torch_function__`), or a torch without that entry, go through the public call.
    """
    plain = type(out) is torch.Tensor and all(type(t) is torch.Tensor for t in inputs)
    if _RUN_BACKWARD is None or not plain or seed.shape != out.shape:
        return torch.autograd.grad(out, inputs, grad_outputs=seed, allow_unused=True)
    return _RUN_BACKWARD((out,), (seed,), False, False, inputs, True, accumulate_grad=False)


def _own(grad: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
    """`grad`, copied if it is (a view of) a kept seed: the caller owns what comes back."""
    if grad.untyped_storage().data_ptr() == seed.untyped_storage().data_ptr():
        return grad.clone()
    return grad


def _first_tensor(model: torch.nn.Module, kind: str) -> torch.Tensor | None:
    """`next(model.parameters())` (or buffers), in the same order, without the generator
    chain: adapting a model happens on every call of an explainer in a loop."""
    stack = [model]
    while stack:
        module = stack.pop()
        for tensor in getattr(module, kind).values():
            if tensor is not None:
                return tensor
        for child in reversed(module._modules.values()):
            if child is not None:
                stack.append(child)
    return None


def _modules_in_training(model: torch.nn.Module) -> tuple[list[torch.nn.Module], bool]:
    """The modules in train mode (usually none: nothing to switch), found in one loop
    instead of `modules()`'s generator chain, on every call; and, where some are, whether
    every module's mode is a plain flag (see `_plain_mode`)."""
    stack, training, seen = [model], [], []
    while stack:
        module = stack.pop()
        seen.append(module)
        if module.training:
            training.append(module)
        for child in module._modules.values():
            if child is not None:
                stack.append(child)
    if not training:
        return training, True
    plain = all(_PLAIN_MODE.get(type(m)) or _plain_mode(type(m)) for m in seen)
    return training, plain


#: module class -> whether `train(mode)` only sets the `training` flag (see `_plain_mode`)
_PLAIN_MODE: dict[type, bool] = {}


def _plain_mode(cls: type) -> bool:
    """Whether `cls` inherits `Module.train` and `Module.__setattr__` untouched, so that its
    mode is the `training` entry of its `__dict__` and nothing else. `Module.__setattr__`
    on every module, twice per call, was a fifth of a 1-row saliency call; a class that
    overrides `train` (to freeze a BatchNorm, say) gets `model.eval()` as before."""
    module = torch.nn.Module
    plain = (
        cls.train is module.train
        and cls.eval is module.eval
        and cls.__setattr__ is module.__setattr__
        and getattr(cls, "training", None) is None
    )
    _PLAIN_MODE[cls] = plain
    return plain


@contextlib.contextmanager
def _flags_switched_to_eval(training: list[torch.nn.Module]) -> Iterator[None]:
    """`model.eval()` and back for a model whose modules all have plain modes: what
    `Module.train` writes, written directly."""
    for module in training:
        module.__dict__["training"] = False
    try:
        yield
    finally:
        for module in training:
            module.__dict__["training"] = True


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor as NumPy; half precision (no NumPy bfloat16) comes back as float32."""
    t = t.detach()
    if t.dtype in _HALF:
        t = t.float()
    return t.numpy() if t.is_cpu else t.cpu().numpy()


def function_module(fn: Any) -> torch.nn.Module:
    """A function of tensors as a module without parameters (`FunctionModel(fn, "torch")`)."""

    class Function(torch.nn.Module):
        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

    return Function().eval()
