"""Long explanations show a tqdm bar on stderr; progress=False shows none."""

from __future__ import annotations

import xai_core
from xai_core import progress

from models import images, tabular, torch_cnn, torch_mlp


def test_a_long_explanation_shows_a_bar_and_progress_false_none(monkeypatch, capsys):
    monkeypatch.setattr(progress, "DELAY", 0.0)  # "long" from the first step on
    xai_core.explain(torch_cnn(), images(2), "integrated_gradients", n_steps=8)
    err = capsys.readouterr().err
    assert "integrated_gradients" in err and "/16 " in err and "row" in err
    xai_core.explain(torch_cnn(), images(2), "integrated_gradients", n_steps=8, progress=False)
    assert capsys.readouterr().err == ""


def test_per_sample_methods_count_samples(monkeypatch, capsys):
    monkeypatch.setattr(progress, "DELAY", 0.0)
    x = tabular(3)
    xai_core.explain(torch_mlp(), x, "lime", background=x, n_samples=20, seed=0)
    err = capsys.readouterr().err
    assert "lime" in err and "/3 " in err and "sample" in err


def test_a_short_explanation_prints_nothing(capsys):
    xai_core.explain(torch_cnn(), images(2), "integrated_gradients", n_steps=8)
    assert capsys.readouterr().err == ""
