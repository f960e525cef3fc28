"""Property-based fuzzing of the newer surfaces (issue 18): `evaluate`, `compare`,
`explain_dataset` and `open_results` on bad types, shapes and stores. Every call either
works or raises an `XaiError`; a user's file is never deleted; and a damaged store is
either refused or read back with exactly the values that were written (never wrong
numbers, never a silent "complete").

Same profiles as tests/test_fuzz.py ("ci" by default, HYPOTHESIS_PROFILE=deep for more).
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import xai_core

from conftest import torch_state

pytest.importorskip("zarr")


D = 4
WEIRD = [0, -1, 1, 2, 1.5, "x", "", None, [], [1], (2, 2), True, float("nan"), 10**20, {"a": 1}]
METRICS = ["sparseness", "complexity", "deletion", "insertion", "infidelity", "completeness"]


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(D, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))


def rows(n=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)


ARRAYS = st.one_of(
    st.builds(rows, st.integers(1, 4)),
    st.sampled_from(
        [
            np.zeros((0, D), np.float32),
            np.full((2, D), np.nan, np.float32),
            np.ones((2, D + 1), np.float32),
            np.ones((2,), np.float32),
            np.array([["a"] * D] * 2),
            np.array([None, 1], dtype=object),
            np.ones((2, D), bool),
            np.ones((2, D), np.int64),
        ]
    ),
)
ANYTHING = st.one_of(ARRAYS, st.sampled_from(WEIRD))


def only_xai_errors(call):
    try:
        return call()
    except xai_core.XaiError:
        return None


# -- evaluate -----------------------------------------------------------------------------
@given(
    metric=st.sampled_from([*METRICS, "nope", 3]),
    field=st.sampled_from(["attributions", "target", "inputs", "predictions", None]),
    value=ANYTHING,
    option=st.sampled_from([None, "n_perturb_samples", "seed", "internal_batch_size", "x"]),
    option_value=st.sampled_from(WEIRD),
)
def test_evaluate_gives_finite_scores_or_an_xai_error(metric, field, value, option, option_value):
    model, x = mlp(), rows()
    explanation = xai_core.explain(model, x, "integrated_gradients", n_steps=4)
    if field is not None:
        explanation = type(explanation)(**{**vars(explanation), field: value})
    options = {} if option is None else {option: option_value}
    before = torch_state(model)
    scores = only_xai_errors(lambda: xai_core.evaluate(model, explanation, metric, **options))
    if scores is not None:
        assert scores.dtype == np.float64 and scores.shape == (len(x),)
        assert np.isfinite(scores).all()
    assert torch_state(model) == before


# -- compare ------------------------------------------------------------------------------
NAMES = st.one_of(
    st.sampled_from(
        [
            3,
            None,
            [],
            [3],
            "saliency",
            ["saliency"],
            {"saliency": 3},
            {"saliency": None},
            {3: {}},
            ["nope"],
            ("saliency", "integrated_gradients"),
        ]
    ),
    st.lists(st.sampled_from(["saliency", "integrated_gradients", "x"]), max_size=2),
)


@given(
    methods=NAMES,
    metrics=st.one_of(NAMES, st.lists(st.sampled_from(METRICS), max_size=2)),
    x=ARRAYS,
)
def test_compare_gives_a_table_or_an_xai_error(methods, metrics, x):
    model = mlp()
    before = torch_state(model)
    result = only_xai_errors(
        lambda: xai_core.compare(model, x, methods, metrics, progress=False, n_steps=4)
    )
    if result is not None:
        assert "|" in result.to_markdown()
    assert torch_state(model) == before


# -- explain_dataset --------------------------------------------------------------------------
def ragged():
    yield rows(2)
    yield np.ones((2, D + 1), np.float32)


DATA = st.one_of(
    ARRAYS,
    st.sampled_from([b"bytes", "no_such.npy", {"x": [[1.0] * D] * 2}, (rows(2), rows(3))]),
    st.just("ragged"),
)
OUTS = st.sampled_from(["fresh", "user_folder", "user_file", "", 3, None, "nosuch://x"])


@given(
    data=DATA,
    out=OUTS,
    batch_size=st.sampled_from([1, 2, 0, -1, 2.5, "2", None]),
    overwrite=st.booleans(),
    extra=st.sampled_from(
        [
            {},
            {"forward_kwargs": [1]},
            {"engine_options": [1]},
            {"engine_options": {"x": 1}},
            {"target": 7},
            {"target": "a"},
            {"store_inputs": True},
        ]
    ),
)
def test_explain_dataset_never_deletes_a_users_file_and_raises_only_xai_errors(
    data, out, batch_size, overwrite, extra
):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "user_folder").mkdir()
        (tmp / "user_folder" / "thesis.tex").write_text("mine")
        (tmp / "user_file").write_text("mine too")
        where = tmp / out if isinstance(out, str) and out and "://" not in out else out
        source = ragged() if isinstance(data, str) and data == "ragged" else data
        only_xai_errors(
            lambda: xai_core.explain_dataset(
                mlp(),
                source,
                "saliency",
                out=where,
                batch_size=batch_size,
                overwrite=overwrite,
                progress=False,
                **extra,
            )
        )
        assert (tmp / "user_folder" / "thesis.tex").read_text() == "mine"
        assert (tmp / "user_file").read_text() == "mine too"


# -- open_results on damaged stores -------------------------------------------------------------
@pytest.fixture(scope="module")
def template(tmp_path_factory):
    out = tmp_path_factory.mktemp("template") / "store"
    rerun(out)
    results = xai_core.open_results(out)
    written = {n: results.group[n][:] for n in ("attributions", "predictions", "target")}
    return out, written


def rerun(out):
    return xai_core.explain_dataset(
        mlp(), rows(10), "integrated_gradients", out=out, batch_size=4, n_steps=4, progress=False
    )


def _damage(path: Path, how: str, where: int) -> None:
    files = sorted(p for p in path.rglob("*") if p.is_file())
    victim = files[where % len(files)]
    data = victim.read_bytes()
    if how == "delete":
        victim.unlink()
    elif how == "truncate":
        victim.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        victim.write_bytes(bytes((b * 7 + 13) % 256 for b in data) or b"x")
    elif how == "flip":
        flipped = bytearray(data)
        if flipped:
            flipped[where % len(flipped)] ^= 0x55
        victim.write_bytes(bytes(flipped))
    elif how == "empty":
        victim.write_bytes(b"")


@given(
    damages=st.lists(
        st.tuples(
            st.sampled_from(["delete", "truncate", "garbage", "flip", "empty"]),
            st.integers(0, 10_000),
        ),
        min_size=1,
        max_size=2,
    )
)
def test_a_damaged_store_is_refused_or_read_back_exactly(template, damages):
    source, written = template
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "store"
        shutil.copytree(source, out)
        for how, where in damages:
            _damage(out, how, where)
        results = only_xai_errors(lambda: xai_core.open_results(out))
        if results is not None:
            _read_back_exactly(results, written)
        resumed = only_xai_errors(lambda: rerun(out))  # resuming repairs, or refuses
        if resumed is not None:
            assert resumed.complete
            _read_back_exactly(xai_core.open_results(out), written, errors=False)


def _read_back_exactly(results, written, errors=True):
    """Each batch reads back as written; with `errors`, a batch may instead be an error."""
    for start, stop in itertools.pairwise([0, 4, 8, 10]):
        try:
            part = results[start:stop]
        except xai_core.XaiError:
            if not errors:
                raise
            continue
        for name, values in written.items():
            np.testing.assert_array_equal(getattr(part, name), values[start:stop])
