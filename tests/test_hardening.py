"""What a careless user or a broken model does: every call is checked, every failure
is an XaiError, the model is left as it was (issue: hardening)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai_core

from conftest import torch_state
from models import tabular

NEEDS = {
    "gradient_shap": {"background": tabular(3, seed=5), "n_samples": 4, "seed": 0},
    "kernel_shap": {"background": tabular(3, seed=5), "n_samples": 40, "seed": 0},
    "lime": {"background": tabular(3, seed=5), "n_samples": 40, "seed": 0},
    "smoothgrad": {"n_samples": 4, "seed": 0},
    "integrated_gradients": {"n_steps": 4},
    "saliency": {},
}


class NaNAfter(torch.nn.Module):
    """Finite on the first `good` calls, NaN in one row after that."""

    def __init__(self, good: int = 0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(6, 3)
        self.good, self.calls = good, 0

    def forward(self, x):
        self.calls += 1
        out = self.fc(x)
        if self.calls > self.good:
            out = out.clone()
            out[-1, 0] = float("nan")
        return out


@pytest.mark.parametrize("method", list(NEEDS))
def test_nan_outputs_are_a_model_output_error(method):
    model = NaNAfter().eval()
    before = torch_state(model)
    with pytest.raises(xai_core.ModelOutputError, match="NaN or inf"):
        xai_core.explain(model, tabular(2), method, **NEEDS[method])
    assert torch_state(model) == before


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients"])
def test_nan_gradients_are_a_model_output_error(method):
    class SqrtAtZero(torch.nn.Module):
        def forward(self, x):
            return torch.sqrt(x.abs()).sum(1, keepdim=True)

    x = tabular(2)
    x[0, 0] = 0.0
    with pytest.raises(xai_core.ModelOutputError, match="gradients"):
        xai_core.explain(SqrtAtZero(), x, method, **NEEDS[method])


class ShrinksOnThirdCall(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(6, 3)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        out = self.fc(x)
        return out[:-1] if self.calls >= 3 else out


@pytest.mark.parametrize("method", ["kernel_shap", "lime", "integrated_gradients"])
def test_a_wrong_batch_size_later_on_is_a_model_output_error(method):
    with pytest.raises(xai_core.ModelOutputError, match="one output row per input row"):
        xai_core.explain(
            ShrinksOnThirdCall(), tabular(3), method, internal_batch_size=4, **NEEDS[method]
        )


def test_float64_inputs_beyond_float32_say_so():
    torch.manual_seed(0)
    x = tabular(2).astype(np.float64)
    x[1, 2] = 1e300
    with pytest.raises(xai_core.ModelOutputError, match="beyond float32"):
        xai_core.explain(torch.nn.Linear(6, 2), x, "saliency")


# -- save and load ------------------------------------------------------------------
def saved(tmp_path, **options):
    from models import torch_mlp

    expl = xai_core.explain(torch_mlp(), tabular(3), "integrated_gradients", n_steps=4, **options)
    path = tmp_path / "expl.npz"
    expl.save(path)
    return expl, path


def test_a_failed_save_leaves_the_previous_file_intact(tmp_path):
    expl, path = saved(tmp_path)
    before = path.read_bytes()
    expl.extras["bad"] = np.array([object(), object()], dtype=object)
    with pytest.raises(xai_core.XaiError, match="pickling"):
        expl.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["expl.npz"]  # no temporary left


def test_an_object_option_is_refused_not_pickled(tmp_path):
    expl, path = saved(tmp_path)
    expl.options["odd"] = np.array([{"a": 1}], dtype=object)
    with pytest.raises(xai_core.XaiError, match="odd"):
        expl.save(tmp_path / "other.npz")
    assert not (tmp_path / "other.npz").exists()


def test_several_inputs_round_trip(tmp_path):
    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(2, 3), torch.nn.Linear(4, 3)

        def forward(self, a, b):
            return self.a(a) + self.b(b)

    rng = np.random.default_rng(0)
    inputs = {"a": rng.normal(size=(2, 2)).astype("f4"), "b": rng.normal(size=(2, 4)).astype("f4")}
    expl = xai_core.explain(Two(), inputs, "saliency")
    expl.save(tmp_path / "two.npz")
    again = xai_core.Explanation.load(tmp_path / "two.npz")
    assert list(again.attributions) == ["a", "b"]
    np.testing.assert_array_equal(again.attributions["b"], expl.attributions["b"])
    np.testing.assert_array_equal(again.inputs["a"], inputs["a"])


def _truncate(path):
    path.write_bytes(path.read_bytes()[:200])


def _replace_meta(meta):
    def write(path):
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files if k != "meta"}
        np.savez(path, meta=np.array(meta), **arrays)

    return write


@pytest.mark.parametrize(
    "damage, message",
    [
        (_truncate, "not a"),
        (lambda p: p.write_bytes(b"garbage" * 50), "not a saved Explanation"),
        (_replace_meta("{not json"), "not a readable"),
        (_replace_meta('{"format": 1}'), "not a readable"),
        (_replace_meta('{"format": 99}'), "format 99"),
        (_replace_meta("[1, 2]"), "JSON object"),
        (
            lambda p: (
                np.save(str(p)[:-4] + ".npy", np.zeros(3))
                or p.unlink()
                or (p.parent / "expl.npy").rename(p)
            ),
            "single array",
        ),
        (lambda p: np.savez(p, meta=np.array([object()], dtype=object)), "not a"),
    ],
)
def test_a_damaged_file_is_an_xai_error(tmp_path, damage, message):
    _, path = saved(tmp_path)
    damage(path)
    with pytest.raises(xai_core.XaiError, match=message):
        xai_core.Explanation.load(path)


# -- option values ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "method, options, message",
    [
        ("integrated_gradients", {"baselines": "zero"}, "baselines must be numbers"),
        ("lime", {"background": tabular(4), "kernel_width": "x"}, "kernel_width"),
        ("lime", {"background": tabular(4), "categorical_features": [99]}, "out of range"),
        ("activations", {"layers": 5}, "layers must be"),
        ("kernel_shap", {"background": tabular(4), "feature_names": ["a", "b"]}, "feature_names"),
        ("lime", {"background": tabular(4), "feature_names": ["a"]}, "feature_names"),
    ],
)
def test_bad_option_values_are_option_errors(method, options, message):
    from models import torch_mlp

    with pytest.raises(xai_core.OptionError, match=message):
        xai_core.explain(torch_mlp(), tabular(2), method, **options)


@pytest.mark.parametrize("method", ["integrated_gradients", "smoothgrad", "kernel_shap", "lime"])
def test_numpy_scalar_options_work(method):
    from models import torch_mlp

    options = {
        "integrated_gradients": {"n_steps": np.int64(5)},
        "smoothgrad": {"n_samples": np.int32(3), "stdevs": np.float32(0.1), "seed": np.uint8(1)},
        "kernel_shap": {"background": tabular(4), "n_samples": np.int64(30), "seed": np.int64(2)},
        "lime": {"background": tabular(4), "n_samples": np.int16(30), "seed": np.int64(2)},
    }[method]
    expl = xai_core.explain(torch_mlp(), tabular(2), method, **options)
    assert np.isfinite(expl.attributions).all()


def test_partition_shap_with_one_background_row_is_exact():
    torch.manual_seed(0)
    linear = torch.nn.Linear(6, 1)
    x, reference = tabular(2), tabular(1, seed=9)
    expl = xai_core.explain(linear, x, "kernel_shap", background=reference, algorithm="partition")
    w = linear.weight.detach().numpy()[0]
    np.testing.assert_allclose(expl.attributions, w * (x - reference), rtol=1e-4, atol=1e-6)


# -- outputs that change between calls (issue 18, item 4) ------------------------------
class WidthChanges(torch.nn.Module):
    """`before` outputs on the first call, `after` on every later one."""

    def __init__(self, before: int, after: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(6, max(before, after))
        self.before, self.after, self.calls = before, after, 0

    def forward(self, x):
        self.calls += 1
        return self.fc(x)[:, : self.before if self.calls == 1 else self.after]


CHANGING = {
    **NEEDS,
    "occlusion": {"window": (2,)},
    "feature_ablation": {},
    "rise": {"n_masks": 8, "cell": 3, "seed": 0},
}


@pytest.mark.parametrize("before, after", [(3, 4), (4, 3)])
@pytest.mark.parametrize("method", list(CHANGING))
def test_a_model_whose_outputs_change_between_calls_is_a_model_output_error(method, before, after):
    model = WidthChanges(before, after).eval()
    state = torch_state(model)
    # one row per call: a gradient method runs one call per chunk (issue 21), so a batch
    # that fits one call would never see the model change
    with pytest.raises(xai_core.ModelOutputError, match="same outputs on every call"):
        xai_core.explain(
            model, tabular(3), method, target=0, internal_batch_size=1, **CHANGING[method]
        )
    assert torch_state(model) == state


class DropsARowAfterFirstCall(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(6, 3)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        out = self.fc(x)
        return out[:-1] if self.calls > 1 and len(out) > 1 else out


def test_deep_shap_refuses_a_model_that_drops_a_row_in_shaps_own_calls():
    model = DropsARowAfterFirstCall().eval()
    state = torch_state(model)
    with pytest.raises(xai_core.ModelOutputError, match="one output row per input row"):
        xai_core.explain(model, tabular(3), "deep_shap", background=tabular(4, seed=5))
    assert torch_state(model) == state


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "feature_ablation"])
def test_a_paddle_model_whose_outputs_change_between_calls_is_a_model_output_error(method):
    paddle = pytest.importorskip("paddle")

    class Grows(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            paddle.seed(0)
            self.fc = paddle.nn.Linear(6, 4)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return self.fc(x)[:, : 3 if self.calls == 1 else 4]

    model = Grows()
    model.eval()
    with pytest.raises(xai_core.ModelOutputError, match="same outputs on every call"):
        xai_core.explain(
            model, tabular(3), method, target=0, internal_batch_size=1, **CHANGING[method]
        )
    assert not model.training
