"""Helpers for backend authors: recognise a framework's classes without importing it.

Importing a framework to test `isinstance` is slow, and here it can crash the
process (paddle imported after tensorflow segfaults), so a backend looks at
the model's class hierarchy by module name, as einops and array-api-compat do.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import CapabilityError, InputError, ModelOutputError, XaiError

#: for backends whose tensors are mutable: the model wrote to the tensor it was given
IN_PLACE = (
    "the model writes to its input tensor in place (e.g. `x.mul_(...)` or an "
    "`inplace=True` activation applied to the input itself), so every explanation built "
    "on that input would be computed from altered values (and an input array shared with "
    "the tensor, as PyTorch shares NumPy memory, has been changed too). Make forward "
    "leave its input unchanged: start it with `x = x.clone()`, or use the out-of-place "
    "operation."
)


def module_roots(obj: Any) -> set[str]:
    """Top-level package names of every class in `type(obj).__mro__`."""
    return {(cls.__module__ or "").split(".")[0] for cls in type(obj).__mro__}


def loaded_module(name: str) -> Any:
    """`importlib.import_module(name)`, as a dict lookup once it is imported: a backend's
    `xai_adapt` runs on every explanation, and an `import` statement inside a function
    costs a pass through the import machinery each time."""
    return sys.modules.get(name) or importlib.import_module(name)


def class_from(obj: Any, module: str, qualname: str) -> bool:
    """`isinstance(obj, module.qualname)` if `module` is already imported, else False.

    Never imports anything: a model of a framework's class means that framework
    has been imported already.
    """
    mod = sys.modules.get(module)
    if mod is None:
        return False
    cls: Any = mod
    for part in qualname.split("."):
        cls = getattr(cls, part, None)
        if cls is None:
            return False
    return isinstance(cls, type) and isinstance(obj, cls)


#: a layer name ending so means the layer's (first) input, not its output: Captum's
#: `attribute_to_layer_input=True`, e.g. `layer="fc2:input"`
LAYER_INPUT = ":input"


def layer_input(name: str) -> tuple[str, bool]:
    """(the layer's own name, whether its input is meant) for a layer name."""
    if name.endswith(LAYER_INPUT):
        return name[: -len(LAYER_INPUT)], True
    return name, False


def layer_element(name: str, known: Callable[[str], bool]) -> tuple[str, tuple[int, ...]]:
    """(the layer's name, the index path into its output) for a name such as "split[0]"
    or "lstm[1][0]": one tensor of a layer that returns a tuple (the names activations
    gives them). A name the model knows as it is names a layer, brackets or not."""
    base, path = name, []
    while not known(base) and base.endswith("]") and "[" in base:
        head, _, index = base[:-1].rpartition("[")
        if not index.isdigit():
            break
        base, path = head, [int(index), *path]
    return (base, tuple(path)) if known(base) else (name, ())


def input_of_an_element(name: str) -> str:
    """The refusal of "layer[i]:input": an element of a layer's output has no input."""
    return (
        f"layer {name!r}: ':input' names a layer's input and '[i]' one tensor of its output; "
        "use one of them."
    )


def element_of(output: Any, path: tuple[int, ...], name: str) -> Any:
    """The tensor at `path` in a layer's (nested) tuple output."""
    for i in path:
        if not isinstance(output, (tuple, list)) or i >= len(output):
            raise InputError(
                f"layer {name!r}: the layer's output has no element {i} there "
                f"(it returns a {type(output).__name__})."
            )
        output = output[i]
    return output


def with_element(output: Any, path: tuple[int, ...], value: Any) -> Any:
    """`output` with the element at `path` replaced by `value` (tuples rebuilt)."""
    if not path:
        return value
    parts = list(output)
    parts[path[0]] = with_element(parts[path[0]], path[1:], value)
    return type(output)(parts) if isinstance(output, tuple) else parts


@contextlib.contextmanager
def forward_hooks(
    layers: Mapping[str, Any],
    names: Sequence[str],
    register: Callable[[Any, Callable[..., None]], Any],
    keep: Callable[[str, Any], tuple[Any, Any]] = lambda name, output: (output, None),
    register_pre: Callable[[Any, Callable[..., Any]], Any] | None = None,
    element: Callable[[str], tuple[str, tuple[int, ...]]] = lambda name: (name, ()),
) -> Iterator[dict[str, Any]]:
    """Record the outputs of the named layers for the duration of a `with` block.

    `register(layer, hook)` attaches `hook(layer, inputs, output)` with the framework's
    own call and returns a handle with `.remove()`; `keep(name, output)` returns what
    is stored and what the layer passes on instead of its output (None: the output
    itself). Storing a copy, or passing one on, is how a capture survives the next
    layer's in-place write (`ReLU(inplace=True)`, `out += identity`), as in Captum.
    Every handle is removed in `finally`, also when registering fails half-way or
    the model raises, so the user's model never keeps a hook of ours. A name ending
    in `LAYER_INPUT` records (and may replace) the layer's first input instead, through
    `register_pre(layer, hook(layer, args) -> args or None)`; `layers` is keyed by the
    layers' own names. `element(name)` splits a name such as "split[0]" into the layer
    and the index path of one tensor of its tuple output (`layer_element`): only that
    tensor is kept, or replaced, in the output passed on.
    """
    store: dict[str, Any] = {}
    handles = []

    def make_hook(name: str) -> Callable[..., Any]:
        _, path = element(name)

        def hook(_layer: Any, _inputs: Any, output: Any) -> Any:
            if not path:
                store[name], passed_on = keep(name, output)
                return passed_on
            store[name], passed_on = keep(name, element_of(output, path, name))
            return None if passed_on is None else with_element(output, path, passed_on)

        return hook

    def make_pre_hook(name: str) -> Callable[..., Any]:
        def hook(_layer: Any, args: Any) -> Any:
            args = tuple(args)
            if not args:
                raise XaiError(
                    f"layer {name!r}: the layer was called without a positional input, so "
                    "there is no input to attribute to; use the layer's output."
                )
            store[name], passed_on = keep(name, args[0])
            return None if passed_on is None else (passed_on, *args[1:])

        return hook

    try:
        for name in names:
            base, at_input = layer_input(name)
            if at_input and register_pre is None:
                raise XaiError(
                    f"layer {name!r}: this backend cannot record a layer's input; use the "
                    "layer's output, or the output of the layer before it."
                )
            if at_input and element(base)[1]:
                raise InputError(input_of_an_element(name))
            if at_input:
                handles.append(register_pre(layers[base], make_pre_hook(name)))
            else:
                handles.append(register(layers[element(name)[0]], make_hook(name)))
        yield store
    finally:
        for handle in handles:
            handle.remove()


def target_of_pass(target: Any, outputs: Callable[[], Any]) -> Any:
    """The target array of one gradient pass: `target` itself, or, where the core leaves
    the choice to this pass (a function; see `ModelAdapter.gradients_and_outputs`), what
    it answers for the pass's outputs (`outputs()`: NumPy, batch first, as the model
    returned them; only computed when asked)."""
    return target(outputs()) if callable(target) else target


def one_hot(shape: tuple[int, ...], target: Any, dtype: Any = "float32") -> Any:
    """d(sum_i out[i, target[i]]) / d out, as a NumPy array of the outputs' shape.

    Fed to the framework's `grad` as the output gradient (`grad_outputs`), it
    starts the backward pass at the outputs themselves: no index and sum nodes
    in the graph, about 15% less per gradient call on a small MLP.
    """
    target = np.asarray(target)
    if len(shape) != 2 or shape[0] != len(target):
        raise ModelOutputError(
            f"the model returned outputs of shape {shape} for {len(target)} input rows; a "
            "model must return one output row per input row, batch first, on every call."
        )
    seed = np.zeros(shape, dtype)
    seed.reshape(-1)[_row_starts(shape) + target] = 1  # flat indices: one fancy index
    return seed


def _row_starts(shape: tuple[int, ...]) -> Any:
    """Where each row of a (rows, k) array starts in its flat view."""
    return np.arange(0, shape[0] * shape[1], shape[1])


def eval_mode(model: Any, layers: Iterable[Any]) -> contextlib.AbstractContextManager[None]:
    """`model.eval()` for a `with` block, then each layer's own `training` flag back.

    For frameworks with PyTorch-style modes (PyTorch, Paddle). A model already
    entirely in eval mode is not touched at all (and costs no generator: this runs on
    every call).
    """
    modes = [(layer, layer.training) for layer in layers]
    if not any(training for _, training in modes):
        return contextlib.nullcontext()
    return _switched_to_eval(model, modes)


@contextlib.contextmanager
def _switched_to_eval(model: Any, modes: list[tuple[Any, bool]]) -> Iterator[None]:
    model.eval()
    try:
        yield
    finally:
        for layer, training in modes:
            layer.training = training


def call_leaving_input(
    call: Callable[[], Any],
    tensors: Sequence[Any],
    version: Callable[[Any], int],
    refused: Callable[[Exception], bool],
) -> Any:
    """`call()`, or an `InputError` if the model writes to one of `tensors` in place.

    `version(t)` is the framework's in-place write counter; `refused(exc)` says
    whether an exception is the framework refusing such a write (autograd does,
    for an input it tracks), which becomes the same clear error.
    """
    before = [version(t) for t in tensors]
    try:
        out = call()
    except Exception as exc:
        if refused(exc):
            raise InputError(IN_PLACE) from exc
        raise
    if [version(t) for t in tensors] != before:
        raise InputError(IN_PLACE)
    return out


def gradient_not_reached(what: str) -> Exception:
    """The error for an input or layer the output's gradient does not reach (see
    `GradientNotReachedError`): never a silent zero."""
    from .errors import GradientNotReachedError

    return GradientNotReachedError(
        f"the gradient of the explained output does not reach {what}: the output does not "
        "depend on it through differentiable operations (it is detached, cast to integers, "
        "thresholded, or computed by a compiled graph without a backward pass), so every "
        "gradient attribution there would be zero and say nothing. Explain a differentiable "
        "path (an input or a layer the output is computed from), or use a forward-only "
        "method (occlusion, feature_ablation, kernel_shap, lime)."
    )


def input_name(slot: Any, several: bool) -> str:
    """How an error names an attributed input: 'the input', or 'input 0' / "input 'ids'"."""
    return f"input {slot!r}" if several else "the input"


def layer_not_run(name: str) -> Exception:
    """The error for a layer that exists but was not called during the forward pass."""
    from .errors import LayerNotRunError

    return LayerNotRunError(name)


def stored_output(store: Mapping[str, Any], name: str) -> Any:
    """A layer's output recorded by `forward_hooks` (or a recorder), or `LayerNotRunError`."""
    if name not in store:
        raise layer_not_run(name)
    return store[name]


def flatten_capture(name: str, output: Any, is_tensor: Callable[[Any], bool]) -> dict[str, Any]:
    """A captured layer output as named tensors: one tensor under `name`; a tuple, list or
    dict (an LSTM's `(out, (h, c))`, attention's `(out, weights)`) as `name[0]`,
    `name[1][0]`, `name['key']`, ... (Captum's LayerActivation returns such a tuple);
    None entries are left out."""
    if is_tensor(output):
        return {name: output}
    if isinstance(output, Mapping):
        parts = [(f"{name}[{k!r}]", v) for k, v in output.items()]
    elif isinstance(output, (tuple, list)):
        parts = [(f"{name}[{i}]", v) for i, v in enumerate(output)]
    else:
        return {}
    flat: dict[str, Any] = {}
    for key, value in parts:
        flat.update(flatten_capture(key, value, is_tensor))
    return flat


def copy_structure(
    output: Any, copy: Callable[[Any], Any], is_tensor: Callable[[Any], bool]
) -> Any:
    """`output` with every tensor in it copied (tuples, lists and dicts kept)."""
    if is_tensor(output):
        return copy(output)
    if isinstance(output, Mapping):
        return {k: copy_structure(v, copy, is_tensor) for k, v in output.items()}
    if isinstance(output, (tuple, list)):  # a named tuple or ModelOutput becomes a tuple
        return tuple(copy_structure(v, copy, is_tensor) for v in output)
    return output


def not_one_tensor(name: str, output: Any) -> Exception:
    """The error for a hooked layer that returns a tuple, a dict or None."""
    fix = "pick a layer (or a sublayer) that returns a tensor"
    if isinstance(output, (tuple, list)) and output:
        # the tuple itself, or the names its parts were captured under
        names = [p if isinstance(p, str) else f"{name}[{i}]" for i, p in enumerate(output)]
        fix = f"name one of its tensors ({', '.join(names)}) or a list of them, or {fix}"
    return InputError(f"layer {name!r} returns a {type(output).__name__}, not one tensor: {fix}.")


def replacement_mismatch(name: str, output_shape: Any, replacement_shape: Any) -> Exception:
    """The error for a replacement that does not have the layer output's shape."""
    return InputError(
        f"layer {name!r} outputs {tuple(output_shape)} for this batch, but its replacement "
        f"has shape {tuple(replacement_shape)}."
    )


def prepare_call(
    inputs: Any,
    tensor: Callable[[Any], Any],
    requires_grad: bool,
    differentiate: Callable[[Any], None],
) -> tuple[tuple, dict[str, Any], list[Any]]:
    """(args, kwargs, attributed tensors) for one model call, for frameworks with mutable
    tensors: one array, or an `xai_core.inputs.ModelInputs`; `tensor(array)` converts,
    `differentiate(t)` marks a floating tensor as one to take gradients for."""
    from .inputs import ModelInputs

    if not isinstance(inputs, ModelInputs):
        x = tensor(inputs)
        attributed, args, kwargs = [x], (x,), {}
    else:
        call = inputs.map_arrays(tensor)
        attributed = [call.get(slot) for slot in call.attributed]
        args, kwargs = call.args, call.kwargs
    if requires_grad:
        for t in attributed:
            differentiate(t)
    return args, kwargs, attributed


def copy_of(model: Any, framework: str) -> Any:
    """A deep copy of `model`, for work that must not touch it (randomised weights)."""
    import copy

    try:
        return copy.deepcopy(model)
    except Exception as exc:  # noqa: BLE001 - re-raised with what to do
        raise CapabilityError(
            f"cannot copy this {framework} model ({type(exc).__name__}: {exc}), and "
            "model_randomization works on a copy so that the model is never modified; make "
            "the model deep-copyable (copy.deepcopy) to use it."
        ) from exc


def check_parameter_shapes(layer: str, expected: list[tuple[int, ...]], given: list[Any]) -> None:
    """Replacement parameters for `layer` must match its parameters one for one."""
    import numpy as np

    shapes = [tuple(np.shape(g)) for g in given]
    if shapes != [tuple(e) for e in expected]:
        raise XaiError(
            f"layer {layer!r} has parameters of shapes {expected} (PyTorch layout), got "
            f"{shapes}; take the shapes from adapter.layer_parameters({layer!r})."
        )


def several_layers(
    layer: str | tuple[str, ...], replacement: Any, to_tensor: Callable[[Any], Any]
) -> tuple[list[str], dict[str, Any] | None]:
    """`layer_gradients`' layer argument as a list of names, and its replacements (one
    array per layer, or one for one layer) as framework tensors by name: several layers
    are replaced together in one pass (Captum's layer methods given a list of layers)."""
    names = [layer] if isinstance(layer, str) else list(layer)
    if replacement is None:
        return names, None
    arrays = [replacement] if isinstance(layer, str) else list(replacement)
    return names, {name: to_tensor(array) for name, array in zip(names, arrays)}


def layer_gradients_result(
    layer: str | tuple[str, ...],
    names: Sequence[str],
    activations: Sequence[Any],
    grads: Sequence[Any],
    to_numpy: Callable[[Any], Any],
) -> tuple:
    """What `layer_gradients` returns, from the framework's tensors: a layer the gradient
    did not reach (None: an auxiliary head's layer, a detached path) raises, never zeros;
    then `one_or_several` of the arrays."""
    for name, grad in zip(names, grads):
        if grad is None:
            raise gradient_not_reached(f"layer {name!r}")
    return one_or_several(layer, [to_numpy(a) for a in activations], [to_numpy(g) for g in grads])


def one_or_several(layer: str | tuple[str, ...], activations: list, grads: list) -> tuple:
    """(activation, gradient) for one layer name; (activations, gradients) as tuples for
    a tuple of names."""
    if isinstance(layer, str):
        return activations[0], grads[0]
    return tuple(activations), tuple(grads)
