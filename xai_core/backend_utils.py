"""Helpers for backend authors: recognise a framework's classes without importing it.

Importing a framework to test `isinstance` is slow, and here it can crash the
process (paddle imported after tensorflow segfaults), so a backend looks at
the model's class hierarchy by module name, as einops and array-api-compat do.
"""

from __future__ import annotations

import sys
from typing import Any


def module_roots(obj: Any) -> set[str]:
    """Top-level package names of every class in `type(obj).__mro__`."""
    return {(cls.__module__ or "").split(".")[0] for cls in type(obj).__mro__}


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
