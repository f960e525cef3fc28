"""`to_html()` of an Explanation, a Comparison and a TextExplanation (issue 25, first
part): one self-contained page each — every image an inline PNG that decodes, with alt
text; no script, no address anything could be fetched from."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser

import numpy as np
import pytest

import xai_core
from xai_core.testing.twins import cnn_weights, mlp_weights, twin

from models import images, tabular

Image = pytest.importorskip("PIL.Image")


class Page(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[dict] = []
        self.tags: list[str] = []
        self.cells: list[str] = []
        self._in_cell = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs))
        self._in_cell = tag in ("td", "th")

    def handle_data(self, data):
        if self._in_cell:
            self.cells.append(data.strip())


def assert_self_contained(text: str) -> Page:
    page = Page(text)
    assert "script" not in page.tags and "<script" not in text.lower()
    assert not re.search(r"(src|href)=[\"'](https?:|//)", text), "a network address"
    assert "http://" not in text and "https://" not in text
    for img in page.images:
        assert img.get("alt"), "an image without alt text"
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix)
        picture = Image.open(io.BytesIO(base64.b64decode(img["src"][len(prefix) :])))
        assert picture.format == "PNG" and min(picture.size) > 50
    return page


def test_an_image_explanation_is_one_page_with_its_picture_options_and_versions():
    e = xai_core.explain(twin("torch", "cnn", cnn_weights()), images(3), "saliency")
    page = assert_self_contained(e.to_html())
    assert len(page.images) == 1
    assert "torch" in page.cells and "abs" in page.cells and "xai_core" in page.cells
    assert e._repr_html_() == e.to_html()


def test_a_tabular_explanation_names_its_features():
    e = xai_core.explain(twin("torch", "mlp", mlp_weights()), tabular(2), "saliency")
    names = [f"feature_{c}" for c in "abcdef"]
    text = e.to_html(feature_names=names)
    assert_self_contained(text)
    default = e.to_html()
    assert text != default  # the picture's labels changed


def test_a_comparison_marks_the_best_method_of_each_metric():
    model = twin("torch", "cnn", cnn_weights())
    comparison = xai_core.compare(
        model,
        images(4),
        ["saliency", "integrated_gradients"],
        ["deletion", "sparseness"],
        progress=False,
    )
    page = assert_self_contained(comparison.to_html())
    starred = [c for c in page.cells if c.endswith("★")]
    assert len(starred) == 2  # one best per metric
    for metric in ("deletion", "sparseness"):
        best = comparison.best(metric)
        mean = f"{comparison.mean(best, metric):.4g}"
        assert f"{mean} ★" in page.cells
    assert len(page.images) == 1


def test_a_text_explanation_page_has_no_script_and_every_token():
    from text_fixtures import gpt2_tokenizer, tiny_gpt2

    tokenizer = gpt2_tokenizer()
    model = tiny_gpt2(len(tokenizer))
    e = xai_core.explain_text(model, tokenizer, "the cat sat", "feature_ablation", target="on")
    text = e.to_html()
    assert_self_contained(text)
    assert np.all([f">{w}</span>" in text for w in ("the", "cat", "sat")])


def test_a_report_has_the_model_every_methods_maps_the_table_and_the_provenance(tmp_path):
    model = twin("torch", "cnn", cnn_weights())
    out = tmp_path / "report.html"
    text = xai_core.report(
        model,
        images(4),
        ["saliency", "integrated_gradients"],
        ["deletion"],
        out=out,
        progress=False,
        samples=3,
    )
    assert out.read_text() == text
    page = assert_self_contained(text)
    assert len(page.images) == 2  # the maps side by side, the comparison figure
    assert "conv1" in text  # the model summary
    assert any(c.endswith("★") for c in page.cells)
    assert "integrated_gradients options" in page.cells and "torch" in " ".join(page.cells)
    assert len(text) < 5 * 2**20


def test_xai_report_from_the_shell(tmp_path):
    import torch

    from xai_core.cli import main

    model = twin("torch", "cnn", cnn_weights())
    torch.jit.trace(model, torch.from_numpy(images(1))).save(str(tmp_path / "cnn.pt"))
    np.save(tmp_path / "x.npy", images(3))
    out = tmp_path / "page.html"
    argv = ["report", str(tmp_path / "cnn.pt"), str(tmp_path / "x.npy"), "--out", str(out)]
    assert main([*argv, "--trust", "--methods", "saliency"]) == 0
    assert_self_contained(out.read_text())
    assert main(argv) == 2  # TorchScript runs code when loaded: only with --trust


def test_the_front_door_details_version_npy_options_file_mode_and_shap_images(tmp_path, capsys):
    """Issue 25's small ones: `xai --version`; `--option background=x.npy` passes the
    array; a saved explanation gets the umask's mode (mkstemp gave 0600); `to_shap()` of
    channels-first images is channels-last, as `shap.plots.image` draws."""
    import os

    from xai_core.cli import _parse_value, main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and xai_core.__version__ in capsys.readouterr().out
    np.save(tmp_path / "bg.npy", tabular(3))
    np.testing.assert_array_equal(_parse_value(str(tmp_path / "bg.npy")), tabular(3))
    e = xai_core.explain(twin("torch", "cnn", cnn_weights()), images(2), "saliency")
    previous = os.umask(0o022)
    try:
        e.save(tmp_path / "e.npz")
    finally:
        os.umask(previous)
    assert (tmp_path / "e.npz").stat().st_mode & 0o777 == 0o644
    shap_view = e.to_shap()
    assert shap_view.data.shape == (2, 8, 8, 1) and shap_view.values.shape == (2, 8, 8, 1)
    np.testing.assert_array_equal(shap_view.values[..., 0], e.attributions[:, 0])


def test_plot_says_when_it_shows_only_the_first_samples():
    model = twin("torch", "cnn", cnn_weights())
    many = xai_core.explain(model, images(8), "saliency").plot()
    assert "first 6 of 8 samples" in many._suptitle.get_text()
    few = xai_core.explain(model, images(3), "saliency").plot()
    assert "first" not in few._suptitle.get_text()


def test_a_report_before_anything_else_leaves_xai_core_summary_a_function():
    """The module `xai_core.summary` shares its name with the function: a report (or
    `xai summary`) run first must not leave the package attribute the module."""
    import subprocess
    import sys

    script = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "import xai_core\n"
        "from xai_core.testing.twins import cnn_weights, twin\n"
        "from models import images\n"
        "model = twin('torch', 'cnn', cnn_weights())\n"
        "xai_core.report(model, images(2), ['saliency'], ['sparseness'], out=None,"
        " progress=False)\n"
        "print(callable(xai_core.summary), callable(xai_core.report))\n"
    )
    root = __import__("pathlib").Path(__file__).parent.parent
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["True", "True"]


def test_an_option_npy_that_holds_pickled_objects_is_refused(tmp_path):
    """`--option background=x.npy` reads arrays only: a pickled object array is a stranger's
    code, refused with the file named."""
    from xai_core.cli import _parse_value

    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(xai_core.XaiError, match="objects.npy"):
        _parse_value(str(tmp_path / "objects.npy"))
