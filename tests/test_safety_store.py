"""explain_dataset never deletes a user's files and never reads back a broken store as
complete (issue 18, items 2 and 3). Each damage is done to a real store the way a crash,
a careless edit or a full disk would, then the store is opened and resumed: opening says
it is damaged, resuming recomputes what was lost and ends equal to an undamaged run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import xai_core

from models import tabular, torch_mlp

zarr = pytest.importorskip("zarr")

N, BATCH = 20, 8  # 3 batches, the last one short


def run(out, model=None, data=None, **options):
    return xai_core.explain_dataset(
        torch_mlp() if model is None else model,
        tabular(N) if data is None else data,
        "integrated_gradients",
        out=out,
        batch_size=BATCH,
        n_steps=4,
        progress=False,
        **options,
    )


@pytest.fixture
def reference(tmp_path):
    return run(tmp_path / "reference")


def same_as(results, reference):
    for name in ("attributions", "predictions", "target", "convergence_delta", "_done"):
        np.testing.assert_array_equal(results.group[name][:], reference.group[name][:])
    assert results.complete


# -- item 2: a user's folder is never deleted -------------------------------------------
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_of_the_users_files_is_refused_and_kept(tmp_path, overwrite):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.tex").write_text("years of work")
    (docs / "figures").mkdir()
    (docs / "figures" / "f.png").write_bytes(b"png")
    with pytest.raises(xai_core.XaiError, match="thesis.tex.*never deletes"):
        run(docs, overwrite=overwrite)
    assert (docs / "thesis.tex").read_text() == "years of work"
    assert (docs / "figures" / "f.png").read_bytes() == b"png"
    assert sorted(p.name for p in docs.iterdir()) == ["figures", "thesis.tex"]


@pytest.mark.parametrize("out", [".", ""])
def test_the_working_directory_and_an_empty_path_are_refused(tmp_path, monkeypatch, out):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(xai_core.XaiError):
        run(out, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_an_existing_file_as_out_is_refused_and_kept(tmp_path):
    target = tmp_path / "results.zarr"
    target.write_text("a file")
    with pytest.raises(xai_core.XaiError, match="is a file"):
        run(target, overwrite=True)
    assert target.read_text() == "a file"


def test_overwrite_replaces_only_a_stores_own_entries(tmp_path, reference):
    out = tmp_path / "s"
    run(out, data=tabular(N, seed=9))
    again = run(out, overwrite=True)
    same_as(again, reference)


def test_an_unreadable_store_is_refused_then_replaced_with_overwrite(tmp_path, reference):
    out = tmp_path / "s"
    run(out)
    (out / "zarr.json").write_text("{broken")
    with pytest.raises(xai_core.XaiError, match="cannot be read.*overwrite=True"):
        run(out)
    with pytest.raises(xai_core.XaiError, match="not a Zarr store written by explain_dataset"):
        xai_core.open_results(out)
    same_as(run(out, overwrite=True), reference)


def test_a_store_with_a_users_file_inside_is_never_emptied(tmp_path):
    out = tmp_path / "s"
    run(out)
    (out / "my_notes.md").write_text("mine")
    with pytest.raises(xai_core.XaiError, match="my_notes.md"):
        run(out, overwrite=True, data=tabular(N, seed=4))
    assert (out / "my_notes.md").read_text() == "mine"


def test_an_unknown_url_scheme_is_an_xai_error(tmp_path):
    with pytest.raises(xai_core.XaiError, match="cannot open"):
        run("nosuchscheme://bucket/s")


# -- item 3: stores that are silently wrong ---------------------------------------------
def test_resuming_with_other_weights_is_refused(tmp_path):
    out = tmp_path / "s"
    run(out)
    with pytest.raises(xai_core.XaiError, match="different model"):
        run(out, model=torch_mlp(seed=1))  # same architecture, other weights
    import torch

    model = torch_mlp()
    with torch.no_grad():
        next(model.parameters())[0, 0] += 1e-3  # one weight nudged
    with pytest.raises(xai_core.XaiError, match="different model"):
        run(out, model=model)


def test_an_edited_npy_is_other_data_even_outside_sampled_rows(tmp_path):
    data = tabular(400)
    np.save(tmp_path / "x.npy", data)
    out = tmp_path / "s"
    run(out, data=str(tmp_path / "x.npy"))
    data[123, 2] += 1.0  # one value in a row no sampling fingerprint would read
    np.save(tmp_path / "x.npy", data)
    with pytest.raises(xai_core.XaiError, match="different data"):
        run(out, data=str(tmp_path / "x.npy"))


def _array_meta(out: Path, name: str) -> tuple[Path, dict]:
    path = out / name / "zarr.json"
    return path, json.loads(path.read_text())


def _damage_deleted_chunk(out: Path) -> None:
    (out / "attributions" / "c" / "1" / "0").unlink()


def _damage_shape_cut(out: Path) -> None:
    path, meta = _array_meta(out, "attributions")
    meta["shape"][0] = 8
    path.write_text(json.dumps(meta))


def _damage_garbage_chunk(out: Path) -> None:
    (out / "predictions" / "c" / "2" / "0").write_bytes(b"\x00garbage" * 5)


def _damage_dtype(out: Path) -> None:
    path, meta = _array_meta(out, "predictions")
    meta["data_type"] = "float64"
    path.write_text(json.dumps(meta))


def _damage_missing_array(out: Path) -> None:
    shutil.rmtree(out / "target")


DAMAGE = {
    "deleted chunk": (_damage_deleted_chunk, "no chunk"),
    "shape cut": (_damage_shape_cut, "has 8 rows"),
    "dtype changed": (_damage_dtype, "float64"),
    "array missing": (_damage_missing_array, "missing"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_store_is_not_read_back_and_resuming_repairs_it(tmp_path, reference, damage):
    out = tmp_path / "s"
    run(out)
    do, message = DAMAGE[damage]
    do(out)
    with pytest.raises(xai_core.XaiError, match=f"damaged.*{message}"):
        xai_core.open_results(out)
    repaired = run(out)
    same_as(repaired, reference)
    same_as(xai_core.open_results(out), reference)


def test_a_garbage_chunk_is_an_error_when_read_and_resuming_recomputes_it(tmp_path, reference):
    out = tmp_path / "s"
    run(out)
    _damage_garbage_chunk(out)
    results = xai_core.open_results(out)  # the metadata is intact: found when read
    assert results[0:8].predictions.shape == (8, 3)
    with pytest.raises(xai_core.XaiError, match="damaged.*Rerun"):
        results[16:20]
    computed = []
    from xai_core.engine import DatasetJob

    original = DatasetJob.explain_batch

    def counting(self, model, batch):
        computed.append(batch.index)
        return original(self, model, batch)

    DatasetJob.explain_batch = counting
    try:
        repaired = run(out)
    finally:
        DatasetJob.explain_batch = original
    assert computed == [2]  # only the damaged batch
    same_as(repaired, reference)


def test_a_store_missing_its_identity_is_refused(tmp_path):
    out = tmp_path / "s"
    run(out)
    meta = json.loads((out / "zarr.json").read_text())
    del meta["attributes"]["identity"]
    (out / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(xai_core.XaiError, match="lack identity.*overwrite=True"):
        run(out)
    with pytest.raises(xai_core.XaiError, match="lack identity"):
        xai_core.open_results(out)


def test_results_index_like_a_sequence(tmp_path, reference):
    last = reference[-1]
    np.testing.assert_array_equal(last.attributions, reference.attributions[N - 1 : N])
    np.testing.assert_array_equal(reference[-3:].predictions, reference.predictions[N - 3 :])
    for bad in (N, -N - 1, 10**12):
        with pytest.raises(IndexError, match="out of range"):
            reference[bad]
    with pytest.raises(xai_core.XaiError, match="int or a slice"):
        reference["1"]
    assert sum(len(e.predictions) for e in reference) == N


@pytest.mark.parametrize("framework", ["tensorflow", "paddle"])
def test_resuming_with_other_weights_is_refused_on_keras_and_paddle(tmp_path, framework):
    pytest.importorskip(framework)
    from xai_core.testing.twins import mlp_weights, twin

    x = tabular(N)
    out = tmp_path / "s"
    first = twin(framework, "mlp", mlp_weights(seed=0))
    xai_core.explain_dataset(first, x, "saliency", out=out, batch_size=BATCH, progress=False)
    again = twin(framework, "mlp", mlp_weights(seed=0))  # the same weights, a new object
    assert xai_core.explain_dataset(
        again, x, "saliency", out=out, batch_size=BATCH, progress=False
    ).complete
    other = twin(framework, "mlp", mlp_weights(seed=1))
    with pytest.raises(xai_core.XaiError, match="different model"):
        xai_core.explain_dataset(other, x, "saliency", out=out, batch_size=BATCH, progress=False)


def test_concurrent_runs_into_one_store_are_refused_not_interleaved(tmp_path, reference):
    import threading

    out, outcomes = tmp_path / "s", []

    def one_run():
        try:
            run(out, overwrite=True)
            outcomes.append("done")
        except xai_core.XaiError as exc:
            outcomes.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - what the test is about
            outcomes.append(f"RAW {exc!r}")

    for _ in range(3):
        threads = [threading.Thread(target=one_run) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not [o for o in outcomes if o.startswith("RAW")], outcomes
    assert all(o == "done" or "another explain_dataset run" in o for o in outcomes), outcomes
    assert "done" in outcomes
    same_as(xai_core.open_results(out), reference)


def test_a_store_mid_write_by_another_run_is_said_busy_not_foreign(tmp_path, reference):
    """A run holding the lock writes zarr's temporary files (zarr.<id>.partial) as it
    goes; a second run that lists the folder then must say the store is busy, not call
    it a user's folder (found racing three threads into one store)."""
    import fsspec

    from xai_core.result_store import StoreLock

    out = tmp_path / "s"
    run(out)
    (out / "zarr.0123abcd.partial").write_bytes(b"{}")  # what a writer leaves mid-write
    fs = fsspec.filesystem("file")
    lock = StoreLock.acquire(fs, str(out), out)
    try:
        with pytest.raises(xai_core.XaiError, match="another explain_dataset run"):
            run(out, overwrite=True)
    finally:
        lock.release()
    with pytest.raises(xai_core.XaiError, match="not an explain_dataset store"):
        run(out, overwrite=True)  # nobody writing: the stray file is refused, kept
    assert (out / "zarr.0123abcd.partial").exists()
