"""Plugin discovery: entry points, runtime registration, failures recorded, clashes named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest

import xai_core
from xai_core.registry import BACKEND_GROUP, EXPLAINER_GROUP, Registry


def test_builtins_come_from_entry_points_like_any_plugin():
    backends = {ep.name: ep.value for ep in metadata.entry_points(group=BACKEND_GROUP)}
    explainers = {ep.name: ep.value for ep in metadata.entry_points(group=EXPLAINER_GROUP)}
    assert backends["torch"] == "xai_core_backends.pytorch.plugin"
    assert explainers["saliency"] == "xai_core_explainers.saliency"
    assert "torch" in xai_core.backends()
    assert "saliency" in xai_core.explainers()
    records = {(r["group"], r["name"]): r for r in xai_core.plugins()}
    torch_record = records[(BACKEND_GROUP, "torch")]
    assert torch_record["distribution"] == "xai-core"
    assert torch_record["version"] == xai_core.__version__
    assert torch_record["status"] == "loaded"
    assert torch_record["hooks"] == ["xai_adapt"]


def test_no_generic_top_level_packages_installed(tmp_path):
    # run outside the checkout so the repository's folders are not on sys.path
    code = (
        "import importlib.util, json; "
        "print(json.dumps([n for n in ('backends', 'explainers') "
        "if importlib.util.find_spec(n) is not None]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []


def test_broken_plugin_is_recorded_and_others_still_load(monkeypatch):
    real = metadata.entry_points

    def with_broken(group=None, **kw):
        eps = list(real(group=group, **kw))
        if group == BACKEND_GROUP:
            eps.append(metadata.EntryPoint("broken", "xai_no_such_module_anywhere", group))
        if group == EXPLAINER_GROUP:
            eps.append(metadata.EntryPoint("misspelt", "tests_misspelt_plugin", group))
        return eps

    sys.modules["tests_misspelt_plugin"] = _module_with_misspelt_hook()
    monkeypatch.setattr(metadata, "entry_points", with_broken)
    try:
        registry = Registry()
        records = {r.name: r for r in registry.records()}
    finally:
        del sys.modules["tests_misspelt_plugin"]
    assert records["broken"].status == "failed"
    assert "xai_no_such_module_anywhere" in records["broken"].error
    assert records["misspelt"].status == "failed"
    assert "xai_adapter" in records["misspelt"].error  # the misspelt hook is named
    assert records["torch"].status == "loaded"
    assert "torch" in registry.backend_names()
    assert "saliency" in registry.explainer_table()


def _module_with_misspelt_hook():
    import types

    module = types.ModuleType("tests_misspelt_plugin")

    @xai_core.hookimpl
    def xai_adapter(model):  # should be xai_adapt
        return None

    module.xai_adapter = xai_adapter
    return module


def test_two_explainers_with_one_name_is_an_error_naming_both():
    class Imposter(xai_core.Explainer):
        name = "saliency"

        def explain(self, model, inputs, target):
            return xai_core.Attribution()

    class Plugin:
        @xai_core.hookimpl
        def xai_explainers(self):
            return [Imposter]

    with pytest.raises(xai_core.PluginError) as info:
        xai_core.register(Plugin(), name="imposter")
    assert "imposter" in str(info.value) and "saliency" in str(info.value)
    # the clash was rolled back: the real saliency still works
    assert xai_core.get_explainer("saliency").__class__.__name__ == "Saliency"


def test_runtime_registration_of_a_backend_and_an_explainer():
    class Doubler:
        def __call__(self, x):
            return 2 * x

    class DoublerAdapter(xai_core.ModelAdapter):
        backend = "doubler"

        def forward(self, inputs):
            return self.model(inputs)

    class SumOutputs(xai_core.Explainer):
        name = "test_sum_outputs"

        def explain(self, model, inputs, target):
            return xai_core.Attribution(attributions=model.forward(inputs))

    class Plugin:
        @xai_core.hookimpl
        def xai_adapt(self, model):
            return DoublerAdapter(model) if isinstance(model, Doubler) else None

        @xai_core.hookimpl
        def xai_explainers(self):
            return [SumOutputs]

    plugin = Plugin()
    xai_core.register(plugin, name="doubler")
    try:
        assert "doubler" in xai_core.backends()
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        expl = xai_core.explain(Doubler(), x, "test_sum_outputs", target=0)
        np.testing.assert_array_equal(expl.attributions, 2 * x)
        assert expl.backend == "doubler"
    finally:
        xai_core.unregister(plugin)
    assert "doubler" not in xai_core.backends()
    with pytest.raises(xai_core.UnknownMethodError):
        xai_core.get_explainer("test_sum_outputs")


def test_registering_a_plugin_with_a_misspelt_hook_fails_clearly():
    class Plugin:
        @xai_core.hookimpl
        def xai_explainer(self):  # missing the s
            return []

    with pytest.raises(xai_core.PluginError, match="xai_explainer"):
        xai_core.register(Plugin(), name="misspelt")


def test_environment_variable_blocks_a_plugin():
    env = dict(os.environ, XAI_CORE_DISABLE_PLUGINS="torch")
    code = (
        "import json, xai_core; "
        "print(json.dumps([xai_core.backends(), "
        "[r['status'] for r in xai_core.plugins() if r['name'] == 'torch']]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    backends, status = json.loads(out.stdout)
    assert "torch" not in backends and status == ["disabled"]
