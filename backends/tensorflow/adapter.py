"""`ModelAdapter` for Keras 3 models (Sequential, functional, subclassed) on TensorFlow.

Forward passes and input gradients run in `tf.function`s traced once per input
signature (batch dimension `None`), with `training=False`. Gradients use a
`GradientTape` that watches only the inputs. Keras 3 has no forward hooks, so a
layer is observed by temporarily shadowing its `call` with a recording wrapper
(one instance attribute, removed in `finally`): this works the same for every
kind of model, subclassed ones included, where no graph is known.
"""

from __future__ import annotations

import contextlib
import itertools
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from xai_core import LayerInfo, ModelAdapter
from xai_core.backend_utils import (
    check_parameter_shapes,
    copy_of,
    element_of,
    flatten_capture,
    gradient_not_reached,
    input_name,
    input_of_an_element,
    layer_element,
    layer_gradients_result,
    layer_input,
    replacement_mismatch,
    several_layers,
    stored_output,
    target_of_pass,
    with_element,
)
from xai_core.errors import AmbiguousLayerError, InputError, TargetError
from xai_core.fingerprint import array_digest
from xai_core.inputs import ModelInputs
from xai_core.outputs import LayerOutput, pick_output

#: compiled functions per model, kept across `explain` calls (each call builds a new
#: adapter; retracing per call would cost ~100 ms). Weak both ways: no attribute on
#: the model, and the functions hold the model only through a weak reference.
_COMPILED: weakref.WeakKeyDictionary[Any, tuple[tuple, dict[tuple, Callable]]] = (
    weakref.WeakKeyDictionary()
)


def _fingerprint(model: Any) -> tuple:
    """What a traced function bakes in and a user may change: the model's layers (a
    Sequential's `pop()` / `add()`) and its plain public attributes (`model.scale = 10`
    read by a subclassed `call`). Cheap enough to check on every call."""
    plain = tuple(
        sorted([(k, v) for k, v in vars(model).items() if type(v) in _PLAIN and k[:1] != "_"])
    )
    return tuple(id(layer) for layer in model.layers), plain


#: no instance attribute of that name (a layer's own `call` is its class's)
_ABSENT = object()

#: attribute types a traced `call` may read as constants (subclasses of them, e.g. an
#: IntEnum, are not plain values of a model's configuration)
_PLAIN = frozenset({bool, int, float, str})


def _compiled_for(model: Any) -> dict[tuple, Callable]:
    """The functions compiled for the model as it is now (a changed model starts afresh)."""
    fingerprint = _fingerprint(model)
    cached = _COMPILED.get(model)
    if cached is None or cached[0] != fingerprint:
        cached = _COMPILED[model] = (fingerprint, {})
    return cached[1]


def _outputs_of(model_ref: weakref.ref, x: Any, output: Any = None) -> tf.Tensor:
    model = model_ref()
    if isinstance(output, LayerOutput):  # Captum's Neuron* methods: the layer's output
        # recorded inside the rules' layer calls (if any), so the layer keeps its rule
        with KerasAdapter(model)._recording([output.layer]) as store:
            _called(model, x)
        out = stored_output(store, output.layer)
    else:
        out = pick_output(_called(model, x), output)
    if not isinstance(out, tf.Tensor):
        raise InputError(
            f"the model returned a {type(out).__name__}, not a tensor; pick the output to "
            "explain with output=<index, key or function>."
        )
    return out


def _called(model: Any, x: Any) -> Any:
    """What the model returns for `x` (a tensor, or several inputs), in inference mode."""
    if isinstance(x, ModelInputs):  # Keras's convention: several inputs are one list or dict
        attributed = set(x.attributed)
        if x.args:
            inputs = list(x.args) if len(x.args) > 1 else x.args[0]
            extra = x.kwargs
        else:  # a dict of inputs; forward_kwargs that name model inputs join the dict
            declared = _dict_input_names(model)
            inputs = {k: v for k, v in x.kwargs.items() if k in attributed or k in declared}
            extra = {k: v for k, v in x.kwargs.items() if k not in inputs}
        return model(inputs, **extra, training=False)
    return model(x, training=False)


def _dict_input_names(model: Any) -> set[str]:
    """The input names of a functional model that takes a dict (keras-hub's `token_ids`,
    `padding_mask`, ...): a forward_kwarg of that name is one of the inputs, not a call
    argument. Empty for other models."""
    try:
        declared = model.input
    except (AttributeError, ValueError):  # subclassed: no symbolic inputs
        return set()
    return set(declared) if isinstance(declared, dict) else set()


def _flat(out: tf.Tensor) -> tf.Tensor:
    return out if out.shape.rank == 2 else tf.reshape(out, (tf.shape(out)[0], -1))


def _selected(out: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    return tf.gather(_flat(out), target, axis=1, batch_dims=1)


#: targets that a compiled gradient pass asks Python for between its forward and backward
#: steps (`ModelAdapter.targets_from_pass`), by call token: a traced function holds no
#: Python object that changes per call, and TensorFlow may run it on another thread
_PASS_TARGETS: dict[int, Callable[[np.ndarray], np.ndarray]] = {}
_TOKENS = itertools.count()


_PASS_ERRORS: dict[int, BaseException] = {}


def _target_of_pass(token: tf.Tensor, out: tf.Tensor) -> np.ndarray:
    key = int(token)
    try:
        return np.asarray(_PASS_TARGETS[key](out.numpy()), np.int32)
    except Exception as exc:  # re-raised as it is by the caller, not as TensorFlow's error
        _PASS_ERRORS[key] = exc
        raise


def _compile(
    model: Any, kind: str, output: Any, sample_shape: tuple, dtype: tf.DType, rules: Any = None
) -> Callable:
    model_ref = weakref.ref(model)
    spec = tf.TensorSpec((None, *sample_shape), dtype)
    if kind == "forward":
        return tf.function(lambda x: _outputs_of(model_ref, x, output), input_signature=[spec])

    def outputs(x: tf.Tensor) -> tf.Tensor:
        if rules is None:
            return _outputs_of(model_ref, x, output)
        from .rules import rules_applied

        # traced with the rules' custom gradients in place; the layers are as before after
        with rules_applied(KerasAdapter(model_ref())._leaves(), rules):
            return _outputs_of(model_ref, x, output)

    def input_gradients(x: tf.Tensor, target: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            raw = outputs(x)
            out = _flat(raw)
            # a target beyond the outputs is refused by the caller, once it sees them
            selected = _selected(out, tf.minimum(target, tf.shape(out)[1] - 1))
        return tape.gradient(selected, x), raw

    def targets_in_pass(x: tf.Tensor, token: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            raw = outputs(x)
            target = tf.py_function(_target_of_pass, [token, raw], tf.int32)
            target.set_shape([None])
            selected = _selected(raw, target)
        return tape.gradient(selected, x), raw

    if kind == "gradients":
        targets = tf.TensorSpec((None,), tf.int32)
        return tf.function(input_gradients, input_signature=[spec, targets])
    return tf.function(targets_in_pass, input_signature=[spec, tf.TensorSpec((), tf.int64)])


class KerasAdapter(ModelAdapter):
    backend = "tensorflow"
    layer_outputs = True  # `outputs.LayerOutput` as `output`: Captum's Neuron* methods
    channels_last = True
    targets_from_pass = True

    def __init__(self, model: keras.Model) -> None:
        super().__init__(model)
        policy = getattr(model, "dtype_policy", None)
        self.dtype = tf.as_dtype(getattr(policy, "compute_dtype", None) or "float32")
        self._leaf_layers: dict[str, keras.layers.Layer] | None = None
        self._block_layers: dict[str, keras.layers.Layer] = {}

    @contextlib.contextmanager
    def foreign_session(self) -> Iterator[None]:
        """shap's DeepExplainer overrides TensorFlow's global gradient registry while it runs
        and `execute.record_gradient`, and restores them only if it succeeds: they (and
        every layer's attributes) are put back here, whatever happens, or every later
        gradient in the process fails."""
        from tensorflow.python.eager import execute as tf_execute
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import gradients_util

        registry = tf_ops._gradient_registry._registry
        saved = {name: dict(entry) for name, entry in registry.items()}
        record_gradient = tf_execute.record_gradient
        backpropagatable = getattr(gradients_util, "_IsBackpropagatable", None)
        layers = [self.model, *self._leaves().values()]
        attributes = [(layer, dict(vars(layer))) for layer in layers]
        try:
            yield
        finally:
            tf_execute.record_gradient = record_gradient
            if backpropagatable is not None:
                gradients_util._IsBackpropagatable = backpropagatable
            for name in set(registry) - set(saved):
                del registry[name]
            for name, entry in saved.items():
                registry[name] = entry
            for layer, before in attributes:
                for extra in set(vars(layer)) - set(before):
                    object.__delattr__(layer, extra)

    def to_numpy(self, inputs: Any) -> np.ndarray:
        if isinstance(inputs, (tf.Tensor, tf.Variable)):
            return inputs.numpy()
        return np.asarray(inputs)

    def to_framework(self, inputs: np.ndarray) -> tf.Tensor:
        return self._tensor(inputs)

    def framework_version(self) -> str:
        return f"tensorflow {tf.__version__}, keras {keras.__version__}"

    def framework_model(
        self, constant_kwargs: dict[str, Any], row_kwargs: dict[str, np.ndarray]
    ) -> Any:
        """shap's TensorFlow path takes a functional graph (inputs, one output tensor): the
        explained output is picked on the model's symbolic outputs; keyword arguments have
        no place in that graph and are refused."""
        if constant_kwargs or row_kwargs:
            return super().framework_model(constant_kwargs, row_kwargs)
        try:
            symbolic = self.model.output
        except (AttributeError, ValueError):  # subclassed: shap gets the model as it is
            if self.output is None:
                return self.model
            symbolic = None
        try:
            picked = pick_output(symbolic, self.output)
            if len(picked.shape) > 2:  # shap explains (N, outputs): flat indices, as targets
                picked = keras.layers.Flatten()(picked)
            elif self.output is None:
                return self.model
            return keras.Model(self.model.inputs, picked)
        except Exception as exc:  # noqa: BLE001 - subclassed models have no symbolic outputs
            raise self.missing(
                f"output={self.output!r} for shap.DeepExplainer on this model ({exc})",
                "use gradient_shap, which takes output= on any model with gradients",
            ) from exc

    # -- compiled functions --------------------------------------------------------
    def _outputs(self, x: Any) -> tf.Tensor:
        return _outputs_of(weakref.ref(self.model), x, self.output)

    def _function(self, kind: str, inputs: np.ndarray, rules: Any = None) -> Callable:
        """One `tf.function` per (model, kind, output, sample shape, dtype, backward rules):
        traced once for any batch size. Rules are told apart by identity (a method that
        builds new rule functions on every call retraces: keep them, as the built-in
        methods do); at most `_KEPT_RULE_SETS` rule sets are kept per model."""
        try:
            compiled = _compiled_for(self.model)
        except TypeError:  # an unhashable or non-weakref-able model: cache on the adapter
            compiled = self.__dict__.setdefault("_own_compiled", {})
        dtype = self._dtype_of(inputs)
        output = self.output if not callable(self.output) else id(self.output)
        ruled = None if rules is None else tuple(sorted((k, id(f)) for k, f in rules.items()))
        key = (kind, output, inputs.shape[1:], dtype.name, ruled)
        fn = compiled.get(key)
        if fn is None:
            if ruled is not None:
                kept = [k for k in compiled if k[-1] is not None]
                for old in kept[: max(0, len(kept) - _KEPT_RULE_SETS + 1)]:
                    del compiled[old]
            shape = inputs.shape[1:]
            fn = _compile(self.model, kind, self.output, shape, dtype, rules)
            # its one concrete function, called directly: tf.function's dispatch (binding,
            # canonicalising, cache lookup) is then skipped on every call (measured: about a
            # third of a 1-row MLP gradient call); kept only once it traced
            fn.concrete = fn.get_concrete_function()
            compiled[key] = fn
        return fn.concrete

    def _dtype_of(self, inputs: np.ndarray) -> tf.DType:
        return self.dtype if inputs.dtype.kind == "f" else tf.as_dtype(inputs.dtype)

    def _tensor(self, inputs: np.ndarray) -> tf.Tensor:
        # tf.constant: the same tensor as convert_to_tensor, ~40% less per-call overhead
        return tf.constant(np.ascontiguousarray(inputs), dtype=self._dtype_of(inputs))

    def _eager(self, inputs: Any) -> Any:
        return (
            self._tensor(inputs)
            if isinstance(inputs, np.ndarray)
            else inputs.map_arrays(self._tensor)
        )

    def forward(self, inputs: Any) -> np.ndarray:
        if isinstance(inputs, ModelInputs):  # several inputs or keyword arguments: eager
            return _numpy(self._outputs(self._eager(inputs)))
        return _numpy(self._function("forward", inputs)(self._tensor(inputs)))

    def gradients(self, inputs: Any, target: np.ndarray) -> Any:
        return self.gradients_and_outputs(inputs, target)[0]

    def gradients_and_outputs(self, inputs: Any, target: Any) -> tuple[Any, np.ndarray]:
        if isinstance(inputs, ModelInputs):
            return self._eager_gradients(inputs, target)
        return self._compiled_gradients(inputs, target)

    def _compiled_gradients(
        self, inputs: np.ndarray, target: Any, rules: Any = None
    ) -> tuple[Any, np.ndarray]:
        if callable(target) and getattr(target, "known", None) is None:  # the pass decides
            grads, raw = self._gradients_deciding(inputs, target, rules)
        else:  # the targets are known: the compiled call; the outputs checked after
            given = np.asarray(target.known if callable(target) else target)
            self._check_target(given)
            fn = self._function("gradients", inputs, rules)
            x = self._tensor(inputs)
            grads, raw = fn(x, _target_tensor(given))
            outputs = _numpy(raw)
            n_out = outputs.size // max(len(outputs), 1)
            if not callable(target) and len(given) and given.max() >= n_out:
                raise TargetError(f"target {given.max()} is beyond the {n_out} outputs.")
            if callable(target):
                answer = target(outputs)  # records the predictions; refuses bad targets
                if not np.array_equal(answer, given):
                    grads, raw = fn(x, _target_tensor(np.asarray(answer)))
                    outputs = _numpy(raw)
            if grads is None:
                raise gradient_not_reached("the input")
            return _numpy(grads), outputs
        if grads is None:
            raise gradient_not_reached("the input")
        return _numpy(grads), _numpy(raw)

    def _eager_gradients(self, inputs: Any, target: Any) -> tuple[Any, np.ndarray]:
        """The gradient pass run eagerly under a tape: several inputs (with backward rules
        too)."""
        several = isinstance(inputs, ModelInputs)
        call = self._eager(inputs)
        watched = [call.get(slot) for slot in call.attributed] if several else [call]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            for t in watched:
                tape.watch(t)
            raw = self._outputs(call)
            target = np.asarray(target_of_pass(target, lambda: _numpy(raw)))
            self._check_target(target)
            out = _flat(raw)
            selected = _selected(out, tf.constant(target, tf.int32))
        grads = tape.gradient(selected, watched)
        slots = call.attributed if several else (0,)
        for slot, g in zip(slots, grads):
            if g is None:
                raise gradient_not_reached(input_name(slot, several))
        result = tuple(_numpy(g) for g in grads)
        return (result if several else result[0]), _numpy(out)

    def rule_gradients(
        self, inputs: np.ndarray, target: np.ndarray, rules: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        from .rules import RULE_ERRORS, rules_applied

        if not isinstance(inputs, ModelInputs):  # traced with the rules, kept per rule set
            RULE_ERRORS.clear()
            try:
                return self._compiled_gradients(inputs, target, rules)
            except Exception:
                if RULE_ERRORS:  # a rule's own error, which tracing wrapped: as itself
                    raise RULE_ERRORS.pop() from None
                raise

        with rules_applied(self._leaves(), rules):
            return self._eager_gradients(inputs, target)

    def token_log_probs(self, logits: Any, positions: np.ndarray, tokens: np.ndarray) -> Any:
        chosen = tf.nn.log_softmax(
            tf.cast(tf.gather(logits, np.asarray(positions, np.int64), axis=1), tf.float32), axis=-1
        )
        # (batch, T, T): each step's log-probabilities of every target token; the diagonal
        return tf.linalg.diag_part(tf.gather(chosen, np.asarray(tokens, np.int64), axis=2))

    def layer_kinds(self) -> dict[str, str | None]:
        from .rules import activation_kinds, kind_of

        leaves = self._leaves()
        return {
            **{name: kind_of(layer) for name, layer in leaves.items()},
            **activation_kinds(leaves),
        }

    def _gradients_deciding(
        self, inputs: np.ndarray, target: Callable, rules: Any = None
    ) -> tuple[Any, Any]:
        """The compiled gradient pass whose target the core chooses from its outputs
        (`targets_from_pass`), asked between the forward and backward steps."""
        token = next(_TOKENS)
        _PASS_TARGETS[token] = target
        try:
            fn = self._function("gradients_in_pass", inputs, rules)
            return fn(self._tensor(inputs), tf.constant(token, tf.int64))
        except tf.errors.OpError:
            cause = _PASS_ERRORS.pop(token, None)  # the core's error, raised inside the graph
            if cause is None:
                raise
            raise cause from None
        finally:
            del _PASS_TARGETS[token]

    @staticmethod
    def _check_target(target: np.ndarray) -> None:
        """tf.gather on the CPU fails on an index beyond int32 with a raw error."""
        if not len(target):
            return
        values = target.tolist() if len(target) <= _KEPT_TARGET_ROWS else target
        low, high = min(values), max(values)
        if low < 0 or high > _INT32_MAX:
            raise TargetError(f"target {high if low >= 0 else low} is not an output index.")

    # -- layers ------------------------------------------------------------------
    def _walk(self) -> tuple[dict[str, keras.layers.Layer], dict[str, keras.layers.Layer]]:
        """(leaf layers, blocks) by path: a layer inside a nested model or block is named
        `block/layer` (Keras forbids '/' in names), so two towers' `proj` are two layers;
        top-level layers keep their own names. A layer shared by two blocks is listed once,
        at its first path. Walked once per adapter (Keras attribute access is slow)."""
        if self._leaf_layers is not None:
            return self._leaf_layers, self._block_layers
        leaves: dict[str, keras.layers.Layer] = {}
        blocks: dict[str, keras.layers.Layer] = {}
        seen: set[int] = set()

        def walk(layer: keras.layers.Layer, path: str) -> None:
            if id(layer) in seen:
                return
            seen.add(id(layer))
            children = [c for c in getattr(layer, "layers", []) if c is not layer]
            if not children:
                if not isinstance(layer, keras.layers.InputLayer):
                    leaves[path] = layer
                return
            blocks[path] = layer
            for child in children:
                walk(child, f"{path}/{child.name}")

        for child in self.model.layers:
            walk(child, child.name)
        self._leaf_layers, self._block_layers = leaves, blocks
        return leaves, blocks

    def _leaves(self) -> dict[str, keras.layers.Layer]:
        return self._walk()[0]

    def _blocks(self) -> dict[str, keras.layers.Layer]:
        """Nested models and layers that contain layers, by path (captured like leaves)."""
        return self._walk()[1]

    def _named(self) -> dict[str, keras.layers.Layer]:
        return {**self._blocks(), **self._leaves()}

    def _paths_named(self, name: str) -> list[str]:
        """Paths whose last part is `name`: a nested layer may be named by its own name
        alone when that is unambiguous."""
        return [path for path in self._named() if path.rsplit("/", 1)[-1] == name]

    def _layer(self, name: str) -> keras.layers.Layer:
        named = self._named()
        if name in named:
            return named[name]
        (path,) = self._paths_named(name)  # check_layers has made sure there is one
        return named[path]

    def layers(self) -> list[LayerInfo]:
        infos = []
        for name, layer in self._leaves().items():
            try:
                shape = tuple(layer.output.shape)
            except (AttributeError, ValueError):  # subclassed models have no symbolic outputs
                shape = None
            try:
                n_params = int(layer.count_params())
            except ValueError:  # a layer the model owns but never built (never called)
                n_params = 0
            infos.append(LayerInfo(name, type(layer).__name__, n_params, shape))
        return infos

    def _learnable(self, layer: str) -> list[tuple[Any, Callable, Callable]]:
        """(variable, to PyTorch layout, back) for a layer's trainable variables: Dense
        kernels are (in, out), convolution kernels (*kernel, in, out)."""
        module = self._layer(layer)
        dense = isinstance(module, keras.layers.Dense)
        conv = "Conv" in type(module).__name__ and "Depthwise" not in type(module).__name__
        out = []
        for v in module.weights:
            if not getattr(v, "trainable", True):
                continue
            nd = len(v.shape)
            if dense and nd == 2:
                out.append((v, np.transpose, np.transpose))
            elif conv and nd >= 3:
                order = (nd - 1, nd - 2, *range(nd - 2))
                back = tuple(np.argsort(order))
                out.append((v, lambda a, o=order: a.transpose(o), lambda a, b=back: a.transpose(b)))
            else:
                out.append((v, np.asarray, np.asarray))
        return out

    def layer_parameters(self, layer: str) -> list[np.ndarray]:
        self.check_layers([layer])
        return [np.array(to(np.asarray(v.numpy()))) for v, to, _ in self._learnable(layer)]

    def fingerprint(self) -> str:
        """Every weight, trainable or not (BatchNorm statistics too), in order; names are left
        out, so a wrapper around the same weights is the same model."""
        return array_digest(np.asarray(v.numpy()) for v in self.model.weights)

    def with_parameters(
        self, replaced: dict[str, list[np.ndarray]], in_place: bool = False
    ) -> KerasAdapter:
        self.check_layers(list(replaced))
        copy = self if in_place else KerasAdapter(_copy_model(self.model))
        for name, arrays in replaced.items():
            params = copy._learnable(name)
            shapes = [tuple(to(np.zeros(tuple(v.shape))).shape) for v, to, _ in params]
            check_parameter_shapes(name, shapes, arrays)
            for (v, _, back), value in zip(params, arrays):
                v.assign(np.ascontiguousarray(back(np.asarray(value))).astype(v.dtype))
        return copy

    def _knows(self, name: str) -> bool:
        return name in self._named() or bool(self._paths_named(name))

    def check_layers(self, names: Sequence[str]) -> None:
        # names only: `layers()` also reads shapes and parameter counts, slow in Keras;
        # "name:input" is the layer's input, "name[0]" one tensor of its tuple output
        names = [layer_element(layer_input(n)[0], self._knows)[0] for n in names]
        named = self._named()
        for name in names:
            paths = [] if name in named else self._paths_named(name)
            if len(paths) > 1:
                raise AmbiguousLayerError(
                    f"{name!r} names {len(paths)} layers of this model: {', '.join(paths)}. "
                    "Name the one you mean by its path."
                )
        missing = [n for n in names if n not in named and not self._paths_named(n)]
        if missing:
            super().check_layers(missing, list(self._blocks()))

    @contextlib.contextmanager
    def _recording(
        self,
        names: Sequence[str],
        tape: tf.GradientTape | None = None,
        replacement: dict[str, tf.Tensor] | None = None,
    ) -> Iterator[dict[str, tf.Tensor]]:
        self.check_layers(names)
        store: dict[str, tf.Tensor] = {}
        wrapped: list[tuple[Any, Any]] = []  # (layer, its own `call` attribute or _ABSENT)
        try:
            for name in names:
                base, at_input = layer_input(name)
                base, path = layer_element(base, self._knows)
                if at_input and path:
                    raise InputError(input_of_an_element(name))
                layer = self._layer(base)
                original = layer.call  # the class's method, or a recorder already set here

                swap = None if replacement is None else replacement.get(name)

                def recorder(
                    *args,
                    _original=original,
                    _name=name,
                    _in=at_input,
                    _swap=swap,
                    _path=path,
                    **kwargs,
                ):
                    if _in:  # "name:input": the layer's first input is what is recorded
                        if not args:
                            raise InputError(
                                f"layer {_name!r} was called without a positional input: "
                                "there is no input to attribute to; use its output."
                            )
                        first = args[0]
                        if _swap is not None:
                            if tuple(_swap.shape) != tuple(first.shape):
                                raise replacement_mismatch(_name, first.shape, _swap.shape)
                            first = _swap
                        if tape is not None:
                            tape.watch(first)
                        store[_name] = first
                        return _original(first, *args[1:], **kwargs)
                    whole = _original(*args, **kwargs)
                    out = element_of(whole, _path, _name)  # "name[0]": one tensor of a tuple
                    if _swap is not None:  # the layer's output is what we say it is
                        if tuple(_swap.shape) != tuple(out.shape):
                            raise replacement_mismatch(_name, out.shape, _swap.shape)
                        out = _swap
                    if tape is not None:  # record what follows the layer
                        tape.watch(out)
                    store[_name] = out
                    return with_element(whole, _path, out)

                # bypass Keras's attribute tracking: one plain instance attribute (a second
                # name on the same layer wraps the first recorder)
                if all(layer is not w for w, _ in wrapped):
                    wrapped.append((layer, vars(layer).get("call", _ABSENT)))
                object.__setattr__(layer, "call", recorder)
            yield store
        finally:  # what was there before put back: a backward rule's call, say
            for layer, own in reversed(wrapped):
                if own is _ABSENT:
                    object.__delattr__(layer, "call")
                else:
                    object.__setattr__(layer, "call", own)

    def capture(self, inputs: np.ndarray, layers: Sequence[str]) -> dict[str, np.ndarray]:
        return self.forward_and_capture(inputs, layers)[1]

    def forward_and_capture(
        self, inputs: np.ndarray, layers: Sequence[str]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        compiled = None
        if isinstance(inputs, np.ndarray) and self.output is None:
            compiled = self._graph_capture(inputs, tuple(layers))  # checks names when it builds
        if compiled is not None:  # the graph is known: a compiled functional sub-model
            out, *captured = compiled(self._tensor(inputs))
            return _numpy(out), {name: _numpy(c) for name, c in zip(layers, captured)}
        with self._recording(layers) as store:  # subclassed: wrap the layers' call
            out = self._outputs(self._eager(inputs))
            captured: dict[str, Any] = {}
            for name in layers:
                captured.update(flatten_capture(name, stored_output(store, name), tf.is_tensor))
            return _numpy(out), {key: _numpy(t) for key, t in captured.items()}

    def _graph_capture(self, inputs: np.ndarray, layers: tuple[str, ...]) -> Callable | None:
        """A traced-once function returning (outputs, *layer outputs), or None without a graph."""
        try:
            compiled = _compiled_for(self.model)
        except TypeError:
            return None
        dtype = self._dtype_of(inputs)
        key = ("capture", layers, inputs.shape[1:], dtype.name)
        if key not in compiled:
            self.check_layers(layers)
            compiled[key] = None
            try:
                if len(self.model.outputs) != 1:
                    return None
                sub = keras.Model(
                    self.model.inputs,
                    [self.model.outputs[0], *(self._symbolic(n) for n in layers)],
                )
            except (AttributeError, ValueError, TypeError, KeyError):
                return None  # subclassed or nested: no usable symbolic graph
            spec = tf.TensorSpec((None, *inputs.shape[1:]), dtype)
            compiled[key] = tf.function(lambda x: sub(x, training=False), input_signature=[spec])
        return compiled[key]

    def _symbolic(self, name: str) -> Any:
        """The symbolic tensor a layer name means: its output, or its input (`:input`)."""
        base, at_input = layer_input(name)
        base, path = layer_element(base, self._knows)
        layer = self._layer(base)
        if not at_input:
            return element_of(layer.output, path, name)
        given = layer.input
        return given[0] if isinstance(given, (list, tuple)) else given

    def layer_gradients_and_outputs(
        self,
        inputs: Any,
        target: Any,
        layer: str | tuple[str, ...],
        replacement: Any = None,
    ) -> tuple[Any, Any, np.ndarray]:
        names, swaps = several_layers(
            layer,
            replacement,
            lambda r: tf.constant(np.ascontiguousarray(r), dtype=self._dtype_of(r)),
        )
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            with self._recording(names, tape, swaps) as store:
                out = self._outputs(self._eager(inputs))
                target = target_of_pass(target, lambda: _numpy(out))
                self._check_target(target)
                selected = _selected(out, tf.constant(target, tf.int32))
        activations = [stored_output(store, name) for name in names]
        grads = tape.gradient(selected, activations)
        acts, grads = layer_gradients_result(layer, names, activations, grads, _numpy)
        return acts, grads, _numpy(out)


def _copy_model(model: keras.Model) -> keras.Model:
    """A copy with the same weights: `clone_model` (Sequential, functional, subclassed
    models with a config), else a deep copy."""
    try:
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        return clone
    except Exception:  # noqa: BLE001 - subclassed models without get_config
        return copy_of(model, "Keras")


_HALF = frozenset({tf.float16, tf.bfloat16})
#: traced rule passes kept per model (one per rule set: a method's rules, per eps)
_KEPT_RULE_SETS = 16
_INT32_MAX = int(np.iinfo(np.int32).max)
#: int32 target tensors kept for calls of up to this many rows, at most this many (an
#: explainer in a loop asks for the same one every time; TensorFlow tensors are immutable)
_KEPT_TARGET_ROWS, _KEPT_TARGETS = 64, 64
_TARGET_TENSORS: dict[bytes, tf.Tensor] = {}


def _target_tensor(target: np.ndarray) -> tf.Tensor:
    """`tf.constant(target, tf.int32)`, kept for small targets (it costs ~10 us a call)."""
    if len(target) > _KEPT_TARGET_ROWS:
        return tf.constant(target, tf.int32)
    key = target.astype(np.int64, copy=False).tobytes()
    kept = _TARGET_TENSORS.get(key)
    if kept is None:
        if len(_TARGET_TENSORS) >= _KEPT_TARGETS:
            _TARGET_TENSORS.clear()
        kept = _TARGET_TENSORS[key] = tf.constant(target, tf.int32)
    return kept


def _numpy(t: tf.Tensor) -> np.ndarray:
    """A tensor as NumPy; half precision comes back as float32."""
    if t.dtype in _HALF:
        t = tf.cast(t, tf.float32)
    return t.numpy()


def function_model(fn: Any) -> Any:
    """A function of tensors as a Keras model without weights (`FunctionModel(fn,
    "tensorflow")`)."""

    class Function(keras.Model):
        def call(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.pop("training", None)
            return fn(*args, **kwargs)

    return Function()
