"""One lock per model: explanations of one model from many threads are correct.

An explanation changes a model for its duration (eval mode, hooks, a shadowed
Keras `call`), so two explanations of one model must not overlap; explanations
of different models must. The lock is re-entrant (a metric may explain inside an
explanation) and held per model object, never globally.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

_GUARD = threading.Lock()
_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_UNWEAKABLE: dict[int, tuple[Any, threading.RLock]] = {}


def model_lock(model: Any) -> threading.RLock:
    """The lock that serialises explanations of `model`."""
    with _GUARD:
        try:
            lock = _LOCKS.get(model)
            if lock is None:
                lock = _LOCKS[model] = threading.RLock()
            return lock
        except TypeError:  # not hashable or not weak-referenceable: keep it alive by id
            held = _UNWEAKABLE.get(id(model))
            if held is None or held[0] is not model:
                held = _UNWEAKABLE[id(model)] = (model, threading.RLock())
            return held[1]
