"""xai_core: one explainability API for every deep-learning framework.

`import xai_core` imports no framework (and not even NumPy): the public names
below load on first use (PEP 562), and a backend imports its framework only
when a model of that framework is explained.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_EXPORTS = {
    "LayerInfo": "adapter",
    "ModelAdapter": "adapter",
    "adapt": "api",
    "backends": "api",
    "explain": "api",
    "explain_text": "text",
    "TextExplanation": "text_explanation",
    "TextTemplate": "text_template",
    "explainers": "api",
    "get_explainer": "api",
    "plugins": "api",
    "register": "api",
    "run": "api",
    "unregister": "api",
    "summary": "summary",
    "evaluate": "evaluation",
    "explain_dataset": "dataset",
    "open_results": "dataset",
    "Results": "dataset",
    "Engine": "engine",
    "DatasetJob": "engine",
    "compare": "evaluation",
    "report": "reporting",
    "metrics": "evaluation",
    "get_metric": "evaluation",
    "Comparison": "evaluation",
    "Metric": "metric",
    "MetricContext": "metric",
    "MetricResult": "metric",
    "UnknownMetricError": "errors",
    "load_model": "loading",
    "FunctionModel": "function_model",
    "Summary": "summary",
    "BatchedModel": "batching",
    "AmbiguousLayerError": "errors",
    "CapabilityError": "errors",
    "InputError": "errors",
    "LayerNotRunError": "errors",
    "GradientNotReachedError": "errors",
    "ModelOutputError": "errors",
    "OptionError": "errors",
    "PluginError": "errors",
    "TargetError": "errors",
    "UnknownLayerError": "errors",
    "UnknownMethodError": "errors",
    "UnsupportedModelError": "errors",
    "XaiError": "errors",
    "Attribution": "explainer",
    "Explainer": "explainer",
    "Explanation": "explanation",
    "hookimpl": "registry",
}

__all__ = [
    "Attribution",
    "Comparison",
    "DatasetJob",
    "Engine",
    "Metric",
    "Results",
    "MetricContext",
    "MetricResult",
    "UnknownMetricError",
    "compare",
    "evaluate",
    "explain_dataset",
    "get_metric",
    "open_results",
    "metrics",
    "BatchedModel",
    "AmbiguousLayerError",
    "CapabilityError",
    "Explainer",
    "Explanation",
    "FunctionModel",
    "InputError",
    "LayerInfo",
    "LayerNotRunError",
    "ModelAdapter",
    "GradientNotReachedError",
    "ModelOutputError",
    "OptionError",
    "PluginError",
    "TargetError",
    "UnknownLayerError",
    "UnknownMethodError",
    "UnsupportedModelError",
    "XaiError",
    "__version__",
    "adapt",
    "backends",
    "explain",
    "explain_text",
    "report",
    "TextExplanation",
    "TextTemplate",
    "explainers",
    "get_explainer",
    "hookimpl",
    "load_model",
    "plugins",
    "register",
    "run",
    "summary",
    "Summary",
    "unregister",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'xai_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from .adapter import LayerInfo, ModelAdapter
    from .api import (
        adapt,
        backends,
        explain,
        explainers,
        get_explainer,
        plugins,
        register,
        run,
        unregister,
    )
    from .batching import BatchedModel
    from .dataset import Results, explain_dataset, open_results
    from .engine import DatasetJob, Engine
    from .errors import (
        AmbiguousLayerError,
        CapabilityError,
        GradientNotReachedError,
        InputError,
        LayerNotRunError,
        ModelOutputError,
        OptionError,
        PluginError,
        TargetError,
        UnknownLayerError,
        UnknownMethodError,
        UnknownMetricError,
        UnsupportedModelError,
        XaiError,
    )
    from .evaluation import Comparison, compare, evaluate, get_metric, metrics
    from .explainer import Attribution, Explainer
    from .explanation import Explanation
    from .function_model import FunctionModel
    from .loading import load_model
    from .metric import Metric, MetricContext, MetricResult
    from .registry import hookimpl
    from .reporting import report
    from .summary import Summary, summary
    from .text import explain_text
    from .text_explanation import TextExplanation
    from .text_template import TextTemplate
