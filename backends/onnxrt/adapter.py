"""`ModelAdapter` for ONNX models: an `onnx.ModelProto` or an `onnxruntime.InferenceSession`.

Forward only: an exported model has no gradients here, so gradient methods raise a
`CapabilityError` naming the methods that work (occlusion, feature_ablation, rise,
kernel_shap, lime). Layers are the graph's node outputs, named as ONNX names
them; capturing them adds them to the graph's outputs in a copy of the model
(the user's `ModelProto` is never changed), so `activations` and `summary` work
too. A session built from bytes cannot be read back: give the `ModelProto` (or
`xai_core.load_model("model.onnx")`) to capture layers.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from xai_core import LayerInfo, ModelAdapter
from xai_core.errors import InputError, UnsupportedModelError

#: ONNX tensor element types -> NumPy, for casting what the user passes
_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}
FORWARD_ONLY = "occlusion, feature_ablation, rise, kernel_shap or lime"


def _session(proto: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(
            proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # noqa: BLE001 - onnxruntime's Fail, InvalidGraph, ...
        # an XaiError: the registry passes it on instead of marking the backend failed
        raise UnsupportedModelError(
            f"onnxruntime {ort.__version__} cannot run this ONNX model: "
            f"{str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__}"
            ". Check the export (onnx.checker.check_model) and its opset."
        ) from exc


class OnnxAdapter(ModelAdapter):
    backend = "onnx"

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        if isinstance(model, onnx.ModelProto):
            self.proto: onnx.ModelProto | None = model
            self._ort = _session(model)
        else:
            self._ort = model
            path = getattr(model, "_model_path", None)
            self.proto = onnx.load(path) if path else None
        self._inputs = self._ort.get_inputs()
        self._outputs = [o.name for o in self._ort.get_outputs()]
        self._capture_sessions: dict[tuple[str, ...], ort.InferenceSession] = {}

    def framework_version(self) -> str:
        return f"onnxruntime {ort.__version__}, onnx {onnx.__version__}"

    # -- computation -------------------------------------------------------------
    def _feed(self, inputs: Any) -> dict[str, np.ndarray]:
        def cast(value: Any, spec: Any) -> Any:
            dtype = _NUMPY.get(spec.type)
            array = np.asarray(value)
            return np.ascontiguousarray(array, dtype=dtype) if dtype else array

        specs = {spec.name: spec for spec in self._inputs}
        if isinstance(inputs, np.ndarray):
            return {self._inputs[0].name: cast(inputs, self._inputs[0])}
        feed = {spec.name: cast(a, spec) for spec, a in zip(self._inputs, inputs.args)}
        for name, value in inputs.kwargs.items():
            if name not in specs:
                raise InputError(
                    f"the ONNX model has no input named {name!r}; its inputs are "
                    f"{', '.join(specs)}."
                )
            feed[name] = cast(value, specs[name])
        return feed

    def _run(self, session: ort.InferenceSession, inputs: Any) -> list[np.ndarray]:
        try:
            return session.run(None, self._feed(inputs))
        except Exception as exc:  # onnxruntime's own exception types, re-raised clearly
            if "Invalid" in type(exc).__name__ or "INVALID" in str(exc):
                expected = ", ".join(f"{s.name} {s.type} {s.shape}" for s in self._inputs)
                raise InputError(
                    f"the ONNX model rejected the inputs: {str(exc)[:300]}. It expects: {expected}."
                ) from exc
            raise

    def _select(self, outputs: list[np.ndarray]) -> np.ndarray:
        raw: Any = outputs[0] if len(outputs) == 1 else dict(zip(self._outputs, outputs))
        return np.asarray(self.select_output(raw))

    def fingerprint(self) -> str | None:
        """The serialised graph: its initializers are the weights."""
        if self.proto is None:
            return None
        return hashlib.sha256(self.proto.SerializeToString()).hexdigest()[:32]

    def forward(self, inputs: Any) -> np.ndarray:
        return self._select(self._run(self._ort, inputs))

    def gradients(self, inputs: Any, target: np.ndarray) -> np.ndarray:
        raise self.missing("gradients", f"an ONNX model is explained by {FORWARD_ONLY}")

    def layer_gradients(self, inputs: Any, target: np.ndarray, layer: str, replacement=None):
        raise self.missing("gradients at a layer", f"an ONNX model is explained by {FORWARD_ONLY}")

    # -- layers ------------------------------------------------------------------
    def _graph(self) -> onnx.GraphProto:
        if self.proto is None:
            raise self.missing(
                "layers of a session built from bytes",
                "pass the onnx.ModelProto (onnx.load(path), or xai_core.load_model(path))",
            )
        return self.proto.graph

    def layers(self) -> list[LayerInfo]:
        graph = self._graph()
        sizes = {t.name: int(np.prod(t.dims, dtype=np.int64)) for t in graph.initializer}
        shapes = _inferred_shapes(self.proto)
        return [
            LayerInfo(
                node.output[0],
                node.op_type,
                sum(sizes.get(name, 0) for name in node.input),
                shapes.get(node.output[0]),
            )
            for node in graph.node
            if node.output and node.op_type != "Constant"
        ]

    def check_layers(self, names: Sequence[str]) -> None:
        known = {o for node in self._graph().node for o in node.output}
        if any(n not in known for n in names):
            super().check_layers([n for n in names if n not in known])

    def forward_and_capture(
        self, inputs: Any, layers: Sequence[str]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        key = tuple(layers)
        session = self._capture_sessions.get(key)
        if session is None:
            self.check_layers(layers)
            extended = copy.deepcopy(self.proto)  # the user's model is never changed
            present = {o.name for o in extended.graph.output}
            for name in layers:
                if name not in present:
                    extended.graph.output.append(onnx.ValueInfoProto(name=name))
            session = self._capture_sessions[key] = _session(extended)
        names = [o.name for o in session.get_outputs()]
        values = dict(zip(names, self._run(session, inputs)))
        out = self._select([values[n] for n in self._outputs])
        return out, {name: values[name] for name in layers}

    def capture(self, inputs: Any, layers: Sequence[str]) -> dict[str, np.ndarray]:
        return self.forward_and_capture(inputs, layers)[1]


def _inferred_shapes(proto: onnx.ModelProto) -> dict[str, tuple[int | None, ...]]:
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # noqa: BLE001 - shapes are a nicety
        return {}
    shapes = {}
    for info in [*inferred.graph.value_info, *inferred.graph.output]:
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    return shapes
