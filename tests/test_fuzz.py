"""Property-based fuzzing: every call either succeeds with finite attributions of the
inputs' shape or raises an `XaiError`; never another exception, never a changed input,
never a changed model.

CI runs the "ci" profile (a few seconds per method); `HYPOTHESIS_PROFILE=deep pytest
tests/test_fuzz.py` runs many more examples on demand.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import xai_core

from conftest import torch_state

N_FEATURES = 4
BUILT_IN = [
    "saliency",
    "smoothgrad",
    "integrated_gradients",
    "gradient_shap",
    "activations",
    "grad_cam",
    "kernel_shap",
    "lime",
    "deep_shap",
]
#: values a careless user passes for any option
WEIRD = [
    0,
    -1,
    1,
    2,
    3,
    1.5,
    -0.5,
    "x",
    "",
    None,
    [],
    [1],
    (2, 2),
    np.int64(2),
    np.float32(0.1),
    True,
    float("nan"),
    float("inf"),
    10**20,
    {"a": 1},
]


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(N_FEATURES, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)
    ).eval()


def outsider():
    from xai_outsider_numpy import NumpyMLP

    return NumpyMLP.random(n_in=N_FEATURES, hidden=5, n_out=3)


FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.floats(-3, 3)
DTYPES = st.sampled_from(["float32", "float64", "float16", "int64", "int32", "uint8", "bool"])


@st.composite
def inputs(draw):
    if draw(st.booleans()):  # mostly well-formed, so the methods themselves get exercised
        n = draw(st.integers(1, 3))
        shape = (n, N_FEATURES)
    else:
        shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=3)))
    dtype = draw(DTYPES) if draw(st.integers(0, 3)) == 0 else "float32"
    values = draw(
        st.lists(
            FLOATS if draw(st.integers(0, 4)) == 0 else st.floats(-3, 3),
            min_size=int(np.prod(shape)),
            max_size=int(np.prod(shape)),
        )
    )
    with np.errstate(all="ignore"):
        array = np.array(values, dtype=np.float64).reshape(shape)
        if dtype not in ("float32", "float64", "float16"):
            array = np.nan_to_num(array, posinf=0, neginf=0)
        return array.astype(dtype)


TARGETS = st.one_of(
    st.none(),
    st.integers(-2, 4),
    st.lists(st.integers(-1, 3), max_size=4),
    st.sampled_from([1.0, 1.5, "a", (0, 1), [[0]], np.int64(1)]),
)


@st.composite
def options(draw, method):
    cls = xai_core.get_explainer(method, **_required(method, None)).__class__
    chosen = dict(_required(method, draw(st.integers(0, 3))))
    for name in sorted(cls.defaults):
        if draw(st.integers(0, 4)) == 0:  # now and then, something odd
            chosen[name] = draw(st.sampled_from(WEIRD))
    small = {"n_samples": 6, "n_steps": 4, "max_background": 3}
    for name, value in small.items():
        if name in cls.defaults and name not in chosen:
            chosen[name] = value
    return chosen


def _required(method, kind):
    background = {
        0: np.random.default_rng(0).normal(size=(3, N_FEATURES)).astype(np.float32),
        1: np.zeros(N_FEATURES),
        2: "lots",
        3: np.full((2, N_FEATURES), np.nan),
        None: np.zeros((2, N_FEATURES), np.float32),
    }[kind]
    if method in ("gradient_shap", "kernel_shap", "deep_shap"):
        return {"background": background}
    if method == "lime":
        return {"background": background, "mode": "tabular"}
    if method == "grad_cam":
        return {"layer": "0"}
    return {}


def check_call(model, state, x, method, target, opts):
    original = x.copy()
    before = state(model)
    try:
        expl = xai_core.explain(model, x, method, target=target, progress=False, **opts)
    except xai_core.XaiError:
        pass
    else:
        if expl.attributions is not None:
            assert isinstance(expl.attributions, np.ndarray)
            if expl.layer is None:
                assert expl.attributions.shape == x.shape
            assert np.isfinite(expl.attributions).all()
        for value in expl.activations.values():
            assert np.isfinite(value).all()
    np.testing.assert_array_equal(x, original)
    assert state(model) == before


@pytest.mark.parametrize("method", BUILT_IN)
def test_fuzz_pytorch(method):
    model = mlp()

    @given(x=inputs(), target=TARGETS, opts=options(method))
    def run(x, target, opts):
        check_call(model, torch_state, x, method, target, opts)

    run()


def _outsider_state(model):
    return tuple(float(np.asarray(w).sum()) for w in (model.w1, model.b1, model.w2, model.b2))


@pytest.mark.parametrize(
    "method", ["saliency", "integrated_gradients", "smoothgrad", "kernel_shap", "lime"]
)
def test_fuzz_outsider_backend(method):
    model = outsider()

    @given(x=inputs(), target=TARGETS, opts=options(method))
    def run(x, target, opts):
        check_call(model, _outsider_state, x, method, target, opts)

    run()
