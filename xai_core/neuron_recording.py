"""Captum's Neuron* methods for a backend with forward hooks (PyTorch, Paddle).

With `outputs.LayerOutput` as the adapter's `output`, what is explained is one layer's
output instead of the model's. A hooked backend records that output on every call of
the session and hands it out from `select_output`; a pass with backward rules records it
again *after* the rules' hooks, so the neuron's own layer keeps its rule (deconvolution
passes a ReLU neuron's own gradient through its rule, DeepLift rescales it).
Framework-free: the backend supplies `_hooked(names, keep_graph=True)`, a context
manager yielding a dict that its hooks fill with the named layers' outputs (the graph
kept, what follows the layer getting a copy).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from .backend_utils import stored_output
from .outputs import LayerOutput


class RecordsLayerOutput:
    """Mixed into a `ModelAdapter` before it (`class A(RecordsLayerOutput, ModelAdapter)`)."""

    layer_outputs = True
    #: the session's recorded layer outputs (None: no neuron explanation running)
    _layer_store: dict[str, Any] | None = None

    def recording_session(
        self, modes: contextlib.AbstractContextManager[None]
    ) -> contextlib.AbstractContextManager[None]:
        """The session as `modes` sets it up, recording the layer where a neuron is explained."""
        if isinstance(self.output, LayerOutput):  # type: ignore[attr-defined]
            return self._recording_layer_output(modes)
        return modes

    @contextlib.contextmanager
    def _recording_layer_output(
        self, modes: contextlib.AbstractContextManager[None]
    ) -> Iterator[None]:
        with modes, self._hooked([self.output.layer], keep_graph=True) as store:  # type: ignore[attr-defined]
            previous, self._layer_store = self._layer_store, store
            try:
                yield
            finally:
                self._layer_store = previous

    def select_output(self, raw: Any) -> Any:
        output = self.output  # type: ignore[attr-defined]
        if not isinstance(output, LayerOutput):
            return super().select_output(raw)  # type: ignore[misc]
        if self._layer_store is None:
            raise self.missing("a layer's output outside a session")  # type: ignore[attr-defined]
        # taken, not read: a call that does not run the layer must not get the last one
        recorded = self._layer_store.pop(output.layer, None)
        return stored_output({}, output.layer) if recorded is None else recorded

    @contextlib.contextmanager
    def rules_then_layer_output(
        self, applied: contextlib.AbstractContextManager[None]
    ) -> Iterator[None]:
        """`applied` (the backend's rules in place), then the neuron's layer recorded
        again, its hook after the rule's: the recorded output is the ruled one."""
        with applied:
            output = self.output  # type: ignore[attr-defined]
            if not isinstance(output, LayerOutput):
                yield
                return
            session_store = self._layer_store
            with self._hooked([output.layer], keep_graph=True) as store:
                self._layer_store = store
                try:
                    yield
                finally:
                    self._layer_store = session_store
                    if session_store is not None:
                        session_store.pop(output.layer, None)
