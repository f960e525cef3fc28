"""The `xai` command."""

from __future__ import annotations

import json
import subprocess
import sys

import xai_core


def xai(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xai_core.cli", *args], capture_output=True, text=True, cwd=cwd
    )


def test_plugins_lists_backends_explainers_and_versions():
    result = xai("plugins")
    assert result.returncode == 0, result.stderr
    assert "torch" in result.stdout and "saliency" in result.stdout
    assert "xai-outsider-numpy 0.4.0" in result.stdout
    assert "xai_core.metrics:" in result.stdout and "top_share" in result.stdout


def test_plugins_json():
    listing = json.loads(xai("plugins", "--json").stdout)
    assert listing["methods"]["integrated_gradients"]["requires"] == ["gradients"]
    assert "n_steps" in listing["methods"]["integrated_gradients"]["options"]
    assert listing["methods"]["kernel_shap"]["requires"] == ["forward"]
    records = listing["plugins"]
    names = {(r["group"], r["name"]): r["status"] for r in records}
    assert names[("xai_core.backends", "torch")] == "loaded"
    assert names[("xai_core.explainers", "saliency")] == "loaded"
    assert names[("xai_core.metrics", "deletion")] == "loaded"
    assert listing["metrics"]["deletion"]["higher_is_better"] is False
    assert "steps" in listing["metrics"]["deletion"]["options"]


def test_demo_writes_figures_and_a_summary(tmp_path):
    out = tmp_path / "demo"
    result = xai("demo", "--out", str(out), "--n-images", "3")
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    chatter = result.stdout + result.stderr  # progress and the summary only
    for noise in ("_kernel.py", "INFO", "oneDNN", "absl", "ccache"):
        assert noise not in chatter, noise
    summary = (out / "summary.txt").read_text()
    frameworks = ["torch", "paddle", "tensorflow"]
    for fw in frameworks:
        accuracy = float(summary.split(f"[{fw}] held-out accuracy: ")[1].split()[0])
        assert accuracy > 0.85, summary
        assert (out / f"gradients_{fw}.png").stat().st_size > 5000
        stored = xai_core.open_results(out / f"ig_{fw}.zarr")  # written by explain_dataset
        assert stored.complete and len(stored) == int(summary.split(" on ")[1].split()[0])
    # the same weights gave the same explanations on every framework
    differences = [
        float(line.rsplit(" ", 1)[1])
        for line in summary.splitlines()
        if "difference to PyTorch" in line and "comparison scores" not in line
    ]
    # which method? every metric's scores of every method, equal on every framework
    scores = [
        float(line.rsplit(" ", 1)[1])
        for line in summary.splitlines()
        if "comparison scores: max relative difference to PyTorch" in line
    ]
    assert len(scores) == 2 and max(scores) < 1e-3, summary
    assert summary.count("| integrated_gradients |") == 3, summary
    for fw in frameworks:
        assert (out / f"compare_{fw}.png").stat().st_size > 20000
    # 3 gradient methods x 2 frameworks, tokens x 2, 3 forward-only methods on the ONNX export,
    # 5 modified-backprop methods (LRP twice) x 2 frameworks
    assert len(differences) == 23 and max(differences) < 1e-5, summary
    completeness = [
        float(line.rsplit(" ", 1)[1])
        for line in summary.splitlines()
        if "deeplift: largest |sum" in line
    ]
    assert len(completeness) == 3 and max(completeness) < 1e-4, summary
    for name in ("perturbation_torch.png", "perturbation_onnx.png", "digits_cnn.onnx"):
        assert (out / name).stat().st_size > 3000
    for name in ("ig_mean_abs_torch.png", "saliency_torch.png", "lime_image_torch.png"):
        assert (out / name).stat().st_size > 5000
    for fw in frameworks:
        for name in (
            "shap_waterfall",
            "shap_decision",
            "lime_tabular",
            "grad_cam",
            "modified_backprop",
        ):
            assert (out / f"{name}_{fw}.png").stat().st_size > 5000
        assert (out / f"text_ig_{fw}_1.png").stat().st_size > 3000
        assert (out / f"text_generation_{fw}.png").stat().st_size > 5000
        if fw != "torch":  # explain_text: the same continuation and scores as PyTorch's
            line = summary.split(f"[{fw}] continuation ")[1].splitlines()[0]
            assert line.startswith("the same") and float(line.rsplit(" ", 1)[1]) < 1e-4
        gap = float(summary.split(f"[{fw}] accuracy")[1].split("max |gap| ")[1].split(";")[0])
        assert gap < 1e-4, summary
