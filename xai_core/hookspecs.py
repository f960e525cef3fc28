"""The hooks a plugin may implement, as plain module-level functions (pluggy's eggsample style).

Plugin authors never import this module: they import `xai_core.hookimpl` and
write functions with these names and signatures.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT_NAME = "xai_core"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec(firstresult=True)
def xai_adapt(model: Any) -> Any:
    """Return a `ModelAdapter` wrapping `model` if this backend handles it, else `None`.

    Decide without importing your framework unless the model's class comes from
    it: look at `type(model).__mro__` module names or `sys.modules`
    (`xai_core.backend_utils.class_from` does this). The first non-None answer wins.
    """


@hookspec
def xai_explainers() -> Any:
    """Return an iterable of `xai_core.Explainer` subclasses this plugin provides.

    Each class carries its method name in `name`; two plugins offering the same
    name is an error naming both.
    """


@hookspec
def xai_metrics() -> Any:
    """Return an iterable of `xai_core.Metric` subclasses this plugin provides.

    Each class carries its metric name in `name`, as explainers do.
    """


@hookspec
def xai_engines() -> Any:
    """Return an iterable of `xai_core.Engine` subclasses (how `explain_dataset` runs
    its batches: in this process, on a cluster)."""
