"""One bad plugin breaks nothing: it is recorded, shown by `xai plugins`, and skipped."""

from __future__ import annotations

import io
import sys
import types
from contextlib import redirect_stdout
from importlib import metadata

import numpy as np
import pytest

import xai_core
from xai_core.cli import main
from xai_core.registry import BACKEND_GROUP, EXPLAINER_GROUP, Registry

from models import tabular, torch_mlp


def fake_entry_points(monkeypatch, modules: dict[str, types.ModuleType], groups: dict[str, str]):
    real = metadata.entry_points

    def entry_points(group=None, **kw):
        eps = list(real(group=group, **kw))
        eps += [metadata.EntryPoint(n, n, g) for n, g in groups.items() if g == group]
        return eps

    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(metadata, "entry_points", entry_points)


def test_a_plugin_calling_sys_exit_at_import_is_recorded(monkeypatch):
    class Exits(types.ModuleType):
        def __getattr__(self, name):
            raise SystemExit(3)

    real = metadata.EntryPoint.load

    def load(ep):
        if ep.name == "exits":
            raise SystemExit(3)  # what `import exits` does when the module calls sys.exit()
        return real(ep)

    fake_entry_points(monkeypatch, {}, {"exits": EXPLAINER_GROUP})
    monkeypatch.setattr(metadata.EntryPoint, "load", load)
    registry = Registry()
    records = {r.name: r for r in registry.records()}
    assert records["exits"].status == "failed" and "SystemExit" in records["exits"].error
    assert "saliency" in registry.explainer_table()


def _plugin(**hooks) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{k: xai_core.hookimpl(v) for k, v in hooks.items()})


def test_a_function_offered_as_an_explainer_is_recorded_and_xai_plugins_works():
    def not_a_class(model, inputs, target):
        return None

    not_a_class.name = "fake"
    plugin = _plugin(xai_explainers=lambda: [not_a_class])
    xai_core.register(plugin, name="function_plugin")
    try:
        assert "fake" not in xai_core.explainers() and "saliency" in xai_core.explainers()
        out = io.StringIO()
        with redirect_stdout(out):
            assert main(["plugins"]) == 0
        assert "not an xai_core.Explainer subclass" in out.getvalue()
    finally:
        xai_core.unregister(plugin)


@pytest.mark.parametrize("answer", ["raises", "a string"])
def test_a_misbehaving_backend_is_skipped_and_recorded(answer):
    def xai_adapt(model):
        if answer == "raises":
            raise RuntimeError("backend bug")
        return "not an adapter"

    plugin = _plugin(xai_adapt=xai_adapt)
    xai_core.register(plugin, name="bad_backend")
    try:
        expl = xai_core.explain(torch_mlp(), tabular(2), "saliency")
        assert expl.backend == "torch"
        record = next(r for r in xai_core.plugins() if r["name"] == "bad_backend")
        assert record["status"] == "failed"
        assert ("backend bug" if answer == "raises" else "not a ModelAdapter") in record["error"]
    finally:
        xai_core.unregister(plugin)


def test_an_installed_explainer_named_like_a_built_in_disables_that_name_only(monkeypatch):
    class Imposter(xai_core.Explainer):
        name = "saliency"

        def explain(self, model, inputs, target):
            return xai_core.Attribution(attributions=np.zeros_like(inputs))

    module = types.ModuleType("imposter_plugin")
    module.xai_explainers = xai_core.hookimpl(lambda: [Imposter])
    fake_entry_points(
        monkeypatch, {"imposter_plugin": module}, {"imposter_plugin": EXPLAINER_GROUP}
    )
    registry = Registry()
    assert "saliency" not in registry.explainer_table()
    assert "integrated_gradients" in registry.explainer_table()
    with pytest.raises(xai_core.PluginError, match="imposter_plugin.*neither|neither.*imposter"):
        registry.explainer_class("saliency")
    with pytest.raises(xai_core.PluginError, match="'imposter_plugin' and 'saliency'"):
        registry.explainer_class("saliency")
    other = _plugin(xai_explainers=lambda: [])
    registry.register(other, name="still_works")  # register() is not broken by the clash


@pytest.mark.parametrize("plugin", [None, 42, "saliency"])
def test_registering_nonsense_is_refused(plugin):
    with pytest.raises(xai_core.PluginError, match="register"):
        xai_core.register(plugin)


@pytest.mark.parametrize(
    "returned, problem",
    [
        (lambda x: xai_core.Attribution(attributions=np.zeros((len(x), 2))), "shape"),
        (lambda x: xai_core.Attribution(attributions=np.array(["a"] * len(x))), "not numbers"),
        (lambda x: np.zeros_like(x), "not an xai_core.Attribution"),
    ],
)
def test_what_an_explainer_returns_is_checked_and_its_plugin_named(returned, problem):
    class Sloppy(xai_core.Explainer):
        name = "sloppy"

        def explain(self, model, inputs, target):
            return returned(inputs)

    plugin = _plugin(xai_explainers=lambda: [Sloppy])
    xai_core.register(plugin, name="sloppy_plugin")
    try:
        with pytest.raises(xai_core.PluginError, match=f"sloppy_plugin.*{problem}|{problem}"):
            xai_core.explain(torch_mlp(), tabular(2), "sloppy")
    finally:
        xai_core.unregister(plugin)


def test_group_constants_are_the_documented_ones():
    assert (BACKEND_GROUP, EXPLAINER_GROUP) == ("xai_core.backends", "xai_core.explainers")
