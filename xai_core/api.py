"""The public verbs: `explain`, `adapt`, `get_explainer`, and the plugin listings."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import noise_tunnel
from ._version import __version__
from .adapter import ModelAdapter
from .batching import BatchedModel
from .errors import ModelOutputError, OptionError, PluginError, UnsupportedModelError, XaiError
from .explainer import Attribution, Explainer
from .explanation import Explanation
from .first_pass import PendingTarget, first_call
from .inputs import pack_per_input, pack_reference, split_forward_kwargs
from .locks import model_lock
from .outputs import LayerOutput
from .progress import Progress
from .registry import REGISTRY
from .validation import check_predictions, checked_inputs, resolve_target


def adapt(model: Any) -> ModelAdapter:
    """Wrap `model` in the adapter of the first installed backend that recognises it."""
    if isinstance(model, ModelAdapter):
        return model
    adapter = REGISTRY.adapt(model)
    if adapter is None and _plain_function(model):
        raise UnsupportedModelError(
            f"{getattr(model, '__qualname__', model)!r} is a plain function, and a function "
            "names no framework: wrap it as xai_core.FunctionModel(fn, framework=...) with "
            "framework 'numpy' (arrays in, array out; forward-only methods) or 'torch', "
            "'tensorflow', 'paddle' (that framework's tensors; gradient methods too)."
        )
    if adapter is None:
        installed = ", ".join(REGISTRY.backend_names()) or "none"
        failed = "".join(
            f"\n  - {r.name} failed to load: {r.error}" for r in REGISTRY.backend_failures()
        )
        raise UnsupportedModelError(
            f"no installed backend handles a {type(model).__module__}.{type(model).__qualname__}. "
            f"Installed backends: {installed}.{failed}\nInstall the backend for its framework "
            "(e.g. `pip install xai-core[torch]`), or wrap the model in your own "
            "`xai_core.ModelAdapter` subclass."
        )
    return adapter


def _plain_function(model: Any) -> bool:
    import types

    return isinstance(model, (types.FunctionType, types.BuiltinFunctionType, types.MethodType))


def get_explainer(method: str, **options: Any) -> Explainer:
    """Build the explainer registered as `method` with its options checked."""
    cls = REGISTRY.explainer_class(method)
    return cls(**options)


#: option values that are never arrays (most of them): not looked at twice on every call
_PLAIN_OPTIONS = frozenset({bool, int, float, str})


def explain(
    model: Any,
    inputs: Any,
    method: str,
    *,
    target: Any = None,
    forward_kwargs: dict[str, Any] | None = None,
    output: Any = None,
    **options: Any,
) -> Explanation:
    """Explain `model`'s predictions on `inputs` with `method`.

    `inputs` is a NumPy array or the framework's tensor, batch first, in the
    layout the model expects; or several of them as a tuple/list (`model(*inputs)`)
    or a dict (`model(**inputs)`). `forward_kwargs` are extra keyword arguments
    that are passed but not attributed (attention masks); batch-first ones follow
    their samples when a method expands or cuts the batch. `output` picks what to
    explain when the model returns several outputs (index, key or function).
    `target` is None (the predicted class, or the only output), an int, one int
    per sample, or a tuple indexing an output with several axes (class, row, col).
    `options` go to the explainer; with `noise_tunnel=` ("smoothgrad", "smoothgrad_sq",
    "vargrad"), `nt_samples=`, `stdevs=` and `seed=`, the method explains noisy copies of
    each sample and their attributions are aggregated (Captum's NoiseTunnel; see
    `xai_core.noise_tunnel`).
    """
    if "noise_tunnel" in options:  # (over a neuron's method too: Captum's NoiseTunnel)
        return _explain_noise_tunnel(model, inputs, method, target, forward_kwargs, output, options)
    if "neuron" in options:
        return _explain_neuron(model, inputs, method, target, forward_kwargs, output, options)
    explainer = get_explainer(method, **options)
    return run(
        explainer, adapt(model), inputs, target, forward_kwargs=forward_kwargs, output=output
    )


def _explain_neuron(
    model: Any,
    inputs: Any,
    method: str,
    target: Any,
    forward_kwargs: dict[str, Any] | None,
    output: Any,
    options: dict[str, Any],
) -> Explanation:
    """Captum's Neuron* methods: `method` explaining element `neuron` of `layer`'s output
    (an int for a layer with one axis per sample, a tuple for several) instead of a
    model output; the method itself sees no layer."""
    options = dict(options)
    neuron, layer = options.pop("neuron"), options.pop("layer", None)
    if not REGISTRY.explainer_class(method).neuron_option:
        raise OptionError(
            f"{method!r} takes no neuron= option; the methods that do (Captum's Neuron* "
            f"methods): {', '.join(_neuron_methods())}."
        )
    if not isinstance(layer, str):
        raise OptionError(
            f"neuron= needs layer=<name> (one layer, a string), got layer={layer!r}: the "
            "neuron is an index into that layer's output."
        )
    if target is not None or output is not None:
        raise OptionError(
            "neuron= names what is explained, so it takes no target= or output=; drop them."
        )
    plain = type(neuron) is int or (
        isinstance(neuron, tuple) and neuron and all(type(i) is int for i in neuron)
    )
    if not plain or min((neuron,) if type(neuron) is int else neuron) < 0:
        raise OptionError(
            f"neuron must be a non-negative int (a layer with one axis per sample) or a "
            f"tuple of them (one per axis of the layer's output), got {neuron!r}."
        )
    adapter = adapt(model)
    if not getattr(adapter, "layer_outputs", False):
        raise adapter.missing(
            "neuron= (a layer's output as the explained output)",
            "explain the model in PyTorch, Keras or Paddle (their backends record a layer's "
            "output), or the layer itself with layer= alone",
        )
    adapter.check_layers([layer])
    explanation = run(
        get_explainer(method, **options),
        adapter,
        inputs,
        neuron,
        forward_kwargs=forward_kwargs,
        output=LayerOutput(layer),
    )
    explanation.output = None
    explanation.options = {**explanation.options, "layer": layer, "neuron": neuron}
    return explanation


def _neuron_methods() -> list[str]:
    return sorted(
        name
        for name, (cls, _) in REGISTRY.explainer_table().items()
        if getattr(cls, "neuron_option", False)
    )


def _explain_noise_tunnel(
    model: Any,
    inputs: Any,
    method: str,
    target: Any,
    forward_kwargs: dict[str, Any] | None,
    output: Any,
    options: dict[str, Any],
) -> Explanation:
    """`explain` over noisy copies of each sample, aggregated per sample."""
    options = dict(options)
    settled = noise_tunnel.settle(options, REGISTRY.explainer_class(method).defaults, method)
    adapter = adapt(model)
    layout, arrays = checked_inputs(inputs, adapter.to_numpy)
    if layout.packed or forward_kwargs or arrays[0].dtype.kind != "f":
        raise OptionError(
            "noise_tunnel adds noise to one float input array and takes no forward_kwargs "
            "(several inputs, token ids and keyword arguments are not supported with it)."
        )
    x = arrays[0]
    neuron = options.get("neuron")
    copies = settled["nt_samples"]

    def noisy(copy_target: Any) -> Explanation:
        return explain(
            model,
            noise_tunnel.noisy_copies(x, settled),
            method,
            target=copy_target,
            output=output,
            **{k: noise_tunnel.per_copy(v, len(x), copies) for k, v in options.items()},
        )

    inner = None if neuron is None else noisy(None)  # (neuron= and layer= checked there)
    explained = output if neuron is None else LayerOutput(options["layer"])
    batched = BatchedModel(adapter, options.get("internal_batch_size"), layout, len(x))
    previous, adapter.output = adapter.output, explained
    try:
        with model_lock(adapter.model), adapter.session():
            predictions = _predict(batched, x)  # (a neuron's: its layer's output)
    finally:
        adapter.output = previous
    if neuron is None:
        user_target = None if target is None else _target_array(adapter, target)
    else:
        user_target = neuron if isinstance(neuron, tuple) else _target_array(adapter, neuron)
    resolved = resolve_target(user_target, predictions, batched.output_shape)
    if inner is None:
        inner = noisy(np.tile(resolved, copies))
    if inner.attributions is None or not isinstance(inner.attributions, np.ndarray):
        raise OptionError(f"noise_tunnel needs a method that returns attributions, not {method!r}.")
    delta = inner.convergence_delta
    return Explanation(
        method=method,
        inputs=x,
        target=resolved,
        predictions=predictions,
        attributions=noise_tunnel.aggregate(inner.attributions, settled["noise_tunnel"], copies),
        convergence_delta=None if delta is None else delta.reshape(copies, -1).mean(axis=0),
        backend=inner.backend,
        options={**inner.options, **settled},
        versions=inner.versions,
        layer=inner.layer,
        output=output,
    )


def run(
    explainer: Explainer,
    adapter: ModelAdapter,
    inputs: Any,
    target: Any = None,
    *,
    forward_kwargs: dict[str, Any] | None = None,
    output: Any = None,
    known_outputs: tuple[int, ...] | None = None,
) -> Explanation:
    """Run a built explainer through an adapter; the model's state is restored however it ends.

    `known_outputs` (one sample's output shape) skips the prediction pass when `target`
    is given: metrics re-explaining thousands of perturbed rows need the attributions
    only (the Explanation's `predictions` are then NaN)."""
    layout, arrays = checked_inputs(inputs, adapter.to_numpy)
    x = layout.pack(arrays)
    batch_kwargs, constant_kwargs = split_forward_kwargs(forward_kwargs, len(x), adapter.to_numpy)
    for name, kind in explainer.per_input_options.items():  # Captum's per-input options
        if layout.packed and explainer.options.get(name) is not None:
            value = explainer.options[name]
            explainer.options[name] = pack_per_input(kind, value, layout, name, len(x))
    for name, value in explainer.options.items():  # tensors as options (baselines, background)
        if value is None or type(value) in _PLAIN_OPTIONS:
            continue
        reference = name in explainer.reference_options
        if reference and layout.packed and isinstance(value, (tuple, list, Mapping)):
            explainer.options[name] = pack_reference(value, layout, name, adapter.to_numpy)
        elif hasattr(value, "__array__") and not isinstance(value, np.ndarray):
            explainer.options[name] = adapter.to_numpy(value)
    batched = BatchedModel(
        adapter,
        explainer.options["internal_batch_size"],
        layout,
        len(x),
        batch_kwargs,
        constant_kwargs,
        Progress(explainer.options["progress"], explainer.name),
    )
    user_target = None if target is None else _target_array(adapter, target)
    with model_lock(adapter.model):  # one explanation of a model at a time; models in parallel
        explanation = _run_locked(
            explainer,
            adapter,
            layout,
            arrays,
            x,
            batched,
            user_target,
            output,
            None if user_target is None else known_outputs,
        )
    explanation.forward_kwargs = dict(forward_kwargs) if forward_kwargs else None
    explanation.output = output
    return explanation


def _run_locked(
    explainer: Explainer,
    adapter: ModelAdapter,
    layout: Any,
    arrays: list[np.ndarray],
    x: np.ndarray,
    batched: BatchedModel,
    user_target: Any,
    output: Any,
    known_outputs: tuple[int, ...] | None = None,
) -> Explanation:
    previous_output, adapter.output = adapter.output, output
    try:
        with adapter.session():
            if explainer.needs_target and known_outputs is not None:
                batched.output_shape = tuple(known_outputs)
                predictions = np.full((len(x), int(np.prod(known_outputs))), np.nan, np.float32)
                resolved = resolve_target(user_target, predictions, batched.output_shape)
                result = explainer.explain(batched, x, resolved)
            elif explainer.needs_target and explainer.target_from_first_pass:
                pending = PendingTarget(user_target, len(x), lambda: _forward_samples(batched, x))
                batched.samples, batched.pending = x, pending
                result = explainer.explain(batched, x, pending)
                resolved = pending.resolve()
                predictions = pending.predictions
                batched.pending = None
            elif explainer.needs_target:
                predictions = _predict_or_aggregate(explainer, batched, x)
                resolved = resolve_target(user_target, predictions, batched.output_shape)
                result = explainer.explain(batched, x, resolved)
            else:  # e.g. activation capture: one pass yields the activations and the predictions
                result = first_call(lambda: explainer.explain(batched, x, None), x, layout)
                predictions = _predict(batched, x)
                resolved = _recorded_target(user_target, predictions, batched.output_shape)
    finally:
        adapter.output = previous_output
        batched.progress.close()
    _check_result(explainer, result, x)
    attributions = result.attributions
    if (
        layout.packed
        and isinstance(attributions, np.ndarray)
        and attributions.shape == x.shape
        and result.layer is None
    ):
        attributions = layout.structure(layout.unpack(attributions, cast=False))
    return Explanation(
        method=explainer.name,
        inputs=layout.structure(arrays),
        target=resolved,
        predictions=predictions,
        attributions=attributions,
        activations=result.activations,
        convergence_delta=result.convergence_delta,
        backend=adapter.backend,
        options={
            **explainer.options,
            **result.options,
            **({"aggregate_mode": True} if batched.aggregate else {}),
        },
        versions=_versions(adapter),
        extras=result.extras,
        layer=result.layer,
    )


def _recorded_target(user_target: Any, predictions: np.ndarray, shape: Any) -> np.ndarray:
    """The target a method that explains no class records: the user's, or the predicted
    one; for outputs with several axes (a segmentation map), where no target is implied,
    the flat index of each sample's largest output, so activations need no dummy target."""
    if user_target is None and shape is not None and len(shape) > 1:
        return predictions.argmax(axis=1).astype(np.int64)
    return resolve_target(user_target, predictions, shape)


def _check_result(explainer: Explainer, result: Any, x: np.ndarray) -> None:
    """What an explainer plugin returned: an `Attribution` whose attributions are real
    numbers shaped like the inputs (or, with a layer, one row per sample)."""

    def fail(problem: str) -> PluginError:
        try:
            plugin = REGISTRY.explainer_table()[explainer.name][1]
        except (KeyError, XaiError):
            plugin = type(explainer).__module__
        return PluginError(
            f"explainer {explainer.name!r} ({type(explainer).__qualname__}, plugin {plugin!r}) "
            f"{problem}; this is a bug in that plugin."
        )

    if not isinstance(result, Attribution):
        raise fail(f"returned a {type(result).__name__}, not an xai_core.Attribution")
    attributions = result.attributions
    if attributions is None:
        return
    if isinstance(result.layer, list):  # several layers: one array per layer, by name
        if not isinstance(attributions, dict) or list(attributions) != result.layer:
            raise fail(f"returned {type(attributions).__name__} for layers {result.layer}")
        for part in attributions.values():
            _check_result(explainer, type(result)(attributions=part, layer="part"), x)
        return
    if not isinstance(attributions, np.ndarray) or attributions.dtype.kind not in "fiu":
        raise fail(f"returned attributions of type {type(attributions).__name__}, not numbers")
    if result.layer is None and attributions.shape != x.shape:
        raise fail(f"returned attributions of shape {attributions.shape} for inputs {x.shape}")
    if result.layer is not None and (attributions.ndim == 0 or len(attributions) != len(x)):
        raise fail(
            f"returned layer attributions of shape {attributions.shape} for {len(x)} samples"
        )


def _target_array(adapter: ModelAdapter, target: Any) -> Any:
    if isinstance(target, tuple):  # one index tuple for every sample: (class, row, col)
        return target
    return adapter.to_numpy(target)


def _predict_or_aggregate(explainer: Explainer, batched: BatchedModel, x: np.ndarray) -> Any:
    """The predictions; or, for a method with `aggregate_mode` and a model that returns
    one value for the whole batch (Captum's aggregation mode), that value for every
    sample with `batched.aggregate` set (the only target is then 0)."""
    try:
        return _predict(batched, x)
    except ModelOutputError as first:
        if not explainer.aggregate_mode or len(x) < 2:
            raise
        try:
            value = batched.batch_value(x)
        except Exception:  # noqa: BLE001 - not one value per batch either: the first error
            raise first from None
    batched.aggregate, batched.output_shape = True, (1,)
    return np.full((len(x), 1), value, np.float32)


def _forward_samples(batched: BatchedModel, x: np.ndarray) -> np.ndarray:
    """The prediction pass a pending target falls back to, outputs as the model shaped them."""
    out = batched.forward(x)
    return out.reshape(len(x), *batched.output_shape)


def _predict(batched: BatchedModel, x: np.ndarray) -> np.ndarray:
    return check_predictions(first_call(lambda: batched.forward(x), x, batched.layout), len(x))


#: what every Explanation records, per adapter class (versions do not change in a process)
_VERSIONS: dict[type, dict[str, str | None]] = {}


def _versions(adapter: ModelAdapter) -> dict[str, str | None]:
    known = _VERSIONS.get(type(adapter))
    if known is None or adapter.backend not in known:
        known = _VERSIONS[type(adapter)] = {
            "xai_core": __version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            adapter.backend: adapter.framework_version(),
        }
    return dict(known)


def backends() -> list[str]:
    """Names of the installed, loaded backends (importing none of their frameworks)."""
    return REGISTRY.backend_names()


def explainers() -> list[str]:
    """Names of the installed explanation methods."""
    return list(REGISTRY.explainer_table())


def plugins() -> list[dict[str, Any]]:
    """Every plugin with its group, distribution, version, load status and any error."""
    return [r.as_dict() for r in REGISTRY.records()]


def register(plugin: object, name: str | None = None) -> str:
    """Register a plugin object (module or instance with hook functions) at run time."""
    return REGISTRY.register(plugin, name)


def unregister(plugin: object) -> None:
    """Undo `register`."""
    REGISTRY.unregister(plugin)
