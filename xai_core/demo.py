"""`xai demo`: train a small CNN on scikit-learn's digits (shipped with the package,
no download), port its weights to every installed framework, explain held-out
digits the same way on each, and write figures plus a text summary."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import XaiError

FRAMEWORKS = ("torch", "paddle", "tensorflow")  # paddle before tensorflow: see README


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError as exc:
        raise XaiError("the demo needs scikit-learn: pip install 'xai-core[demo]'") from exc
    data = sk_digits()
    images = (data.images / 16.0).astype(np.float32)[:, None]  # N, 1, 8, 8
    return images, data.target.astype(np.int64)


def train_torch_cnn(images: np.ndarray, labels: np.ndarray, epochs: int = 40, seed: int = 0) -> Any:
    try:
        import torch
    except ImportError as exc:
        raise XaiError("the demo trains with PyTorch: pip install torch") from exc
    from tqdm.auto import trange

    from .testing.twins import torch_cnn

    torch.manual_seed(seed)
    model = torch_cnn(channels=1, n_out=10)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in trange(epochs, desc="training digits CNN (PyTorch)", leave=False):
        for rows in np.array_split(rng.permutation(len(x)), max(1, len(x) // 64)):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[rows]), y[rows])
            loss.backward()
            opt.step()
    opt.zero_grad(set_to_none=True)
    return model


def installed_frameworks() -> list[str]:
    spec = {"torch": "torch", "paddle": "paddle", "tensorflow": "tensorflow"}
    return [fw for fw in FRAMEWORKS if importlib.util.find_spec(spec[fw]) is not None]


GRADIENT_METHODS: list[tuple[str, dict[str, Any]]] = [
    ("saliency", {}),
    ("smoothgrad", {"n_samples": 50, "stdevs": 0.15, "seed": 0}),
    ("integrated_gradients", {"n_steps": 50}),
]

#: "Which method?": the methods compared on the digits CNN, and the metrics that score them
COMPARED_METRICS = [
    "deletion",
    "insertion",
    "faithfulness_correlation",
    "infidelity",
    "sensitivity_max",
    "model_randomization",
    "sparseness",
]
N_COMPARED = 24


def compared_methods(channels_last: bool) -> dict[str, dict[str, Any]]:
    window = (2, 2, 1) if channels_last else (1, 2, 2)
    return {
        "saliency": {},
        "smoothgrad": {"n_samples": 20, "stdevs": 0.15},
        "integrated_gradients": {"n_steps": 32},
        "occlusion": {"window": window, "strides": window},
        "rise": {"n_masks": 500, "cell": 4},
    }


def _comparison_part(
    fw: str, model: Any, x: np.ndarray, target: np.ndarray, save: Any, reference: dict
) -> list[str]:
    """Every method scored by every metric, on this framework; the scores must match
    PyTorch's (the same weights, the same seeded draws)."""
    import xai_core

    comparison = xai_core.compare(
        model,
        x[:N_COMPARED],
        compared_methods(fw == "tensorflow"),
        {
            **dict.fromkeys(COMPARED_METRICS, {}),
            "deletion": {"softmax": True},  # Petsiuk et al.: the class probability
            "insertion": {"softmax": True},
            "faithfulness_correlation": {"subset_size": 16},
        },
        target=target[:N_COMPARED],
        seed=0,
        progress=False,
    )
    save(comparison.plot(), f"compare_{fw}.png")
    lines = ["", f"[{fw}] which method? mean scores on {N_COMPARED} held-out digits:"]
    lines += [comparison.to_markdown()]
    scores = np.array(
        [[comparison.mean(m, k) for k in comparison.metrics] for m in comparison.methods]
    )
    if fw == "torch":
        reference["comparison"] = scores
    else:
        err = np.nanmax(
            np.abs(scores - reference["comparison"]) / (np.abs(reference["comparison"]) + 1e-12)
        )
        lines.append(f"[{fw}] comparison scores: max relative difference to PyTorch {err:.1e}")
    return lines


def run_demo(
    out: str | os.PathLike[str] = "xai-demo",
    frameworks: list[str] | None = None,
    n_images: int = 6,
) -> Path:
    """Train, explain, draw; returns the output folder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    import xai_core

    from .plotting import plot_comparison, plot_feature_maps, plot_global_importance
    from .testing.twins import from_layout, to_layout, torch_weights, twin

    chosen = [fw for fw in FRAMEWORKS if fw in (frameworks or installed_frameworks())]
    if "torch" not in chosen:
        chosen.insert(0, "torch")  # the demo trains in PyTorch
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if "paddle" in chosen:
        import paddle  # noqa: F401 - before tensorflow (README, Troubleshooting)
    if "tensorflow" in chosen:
        _start_tensorflow_quietly()
    images, labels = load_digits()
    order = np.random.default_rng(0).permutation(len(images))
    train, test = order[:1400], order[1400:]
    trained = train_torch_cnn(images[train], labels[train])
    weights = torch_weights(trained)
    x_test, shown = images[test], list(range(n_images))
    lines = [
        "xai demo: digits CNN (8x8 images, 10 classes), trained in PyTorch;",
        "the same weights loaded into every installed framework; identical calls.",
    ]
    written: list[Path] = []
    reference: dict[str, np.ndarray] = {}

    def save(fig: Any, name: str) -> None:
        path = out_dir / name
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(path)

    for fw in tqdm(chosen, desc="explaining on each framework", leave=False):
        model = trained if fw == "torch" else twin(fw, "cnn", weights)
        x = to_layout(x_test, fw)
        explanations = [
            xai_core.explain(model, x[:n_images], method, **options)
            for method, options in GRADIENT_METHODS
        ]
        save(plot_comparison(explanations, shown), f"gradients_{fw}.png")
        # the whole held-out set goes through explain_dataset: a Zarr store per framework
        stored = xai_core.explain_dataset(
            model,
            x,
            "integrated_gradients",
            out=out_dir / f"ig_{fw}.zarr",
            target=labels[test],
            batch_size=128,
            progress=False,
            overwrite=True,
        )
        ig_all = stored[0 : len(stored)]
        accuracy = float((ig_all.predictions.argmax(1) == labels[test]).mean())
        lines.append("")
        lines.append(f"[{fw}] held-out accuracy: {accuracy:.3f} on {len(test)} images")
        lines.append(f"[{fw}] explain_dataset wrote ig_{fw}.zarr: {stored!r}")
        delta = np.abs(ig_all.convergence_delta)
        gap = np.abs(ig_all.attributions.reshape(len(test), -1).sum(1) - ig_all.convergence_delta)
        lines.append(
            f"[{fw}] integrated gradients, 50 Gauss-Legendre steps: median |delta| / "
            f"|f(x) - f(0)| = {np.median(delta / gap):.1e} (max |delta| {delta.max():.2e})"
        )
        for expl in explanations:
            attr = from_layout(expl.attributions, fw)
            if fw == "torch":
                reference[expl.method] = attr
            else:
                scale = np.abs(reference[expl.method]).max()
                err = np.abs(attr - reference[expl.method]).max() / scale
                lines.append(f"[{fw}] {expl.method}: max relative difference to PyTorch {err:.1e}")
        lines += _comparison_part(fw, model, x, labels[test], save, reference)
        cam = xai_core.explain(model, x[:n_images], "grad_cam", layer="conv2")
        save(cam.plot(), f"grad_cam_{fw}.png")
        lines += _modified_backprop_part(fw, model, x[:n_images], shown, save, reference)
        if fw == "torch":
            save(plot_global_importance(ig_all.attributions), "ig_mean_abs_torch.png")
            save(explanations[0].plot(), "saliency_torch.png")
            acts = xai_core.explain(model, x[:1], "activations", layers=["conv1", "conv2"])
            save(plot_feature_maps(acts, "conv1"), "feature_maps_conv1_torch.png")
            save(plot_feature_maps(acts, "conv2"), "feature_maps_conv2_torch.png")
        table = xai_core.summary(model, inputs=x[:1])
        lines += ["", str(table)]
        if fw == "torch":
            save(table.plot(), "network_torch.png")
    lines += _tabular_part(chosen, save, x_test[:1], trained)
    lines += _text_part(chosen, save)
    if importlib.util.find_spec("tokenizers") and importlib.util.find_spec("transformers"):
        lines += _generation_part(chosen, save)
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"):
        lines += _onnx_part(trained, x_test[:n_images], out_dir, save)
    lines += ["", "figures:"] + [f"  {p}" for p in written]
    (out_dir / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return out_dir


#: the gradient next to the modified-backpropagation methods (issue 22)
MODIFIED_BACKPROP: list[tuple[str, dict[str, Any]]] = [
    ("saliency", {"abs": False}),
    ("guided_backprop", {}),
    ("guided_grad_cam", {"layer": "conv2"}),
    ("deeplift", {}),
    ("lrp", {}),
    ("lrp", {"composite": "epsilon_plus_flat"}),
]


def _modified_backprop_part(
    fw: str, model: Any, x: np.ndarray, shown: list[int], save: Any, reference: dict
) -> list[str]:
    """`modified_backprop_<fw>.png`: the signed gradient, Guided Backprop, Guided Grad-CAM,
    DeepLift and LRP (epsilon, and zennit's epsilon_plus_flat) side by side; each compared
    with the PyTorch twin's numbers."""
    import xai_core

    from .plotting import plot_comparison
    from .testing.twins import from_layout

    explanations = [
        xai_core.explain(model, x, method, **options) for method, options in MODIFIED_BACKPROP
    ]
    labels = [
        "\n".join([method, *(f"{k}={v}" for k, v in options.items())])
        for method, options in MODIFIED_BACKPROP
    ]
    save(plot_comparison(explanations, shown, labels=labels), f"modified_backprop_{fw}.png")
    lines = []
    for expl, label in zip(explanations[1:], labels[1:]):
        attr = from_layout(expl.attributions, fw)
        key = f"modified:{label}"
        if fw == "torch":
            reference[key] = attr
        else:
            err = np.abs(attr - reference[key]).max() / np.abs(reference[key]).max()
            name = label.replace("\n", " ")
            lines.append(f"[{fw}] {name}: max relative difference to PyTorch {err:.1e}")
    deeplift = explanations[[m for m, _ in MODIFIED_BACKPROP].index("deeplift")]
    delta = np.abs(deeplift.convergence_delta).max()
    lines.append(f"[{fw}] deeplift: largest |sum - (f(x) - f(0))| = {delta:.1e}")
    return lines


def _start_tensorflow_quietly() -> None:
    """TensorFlow 2.21 prints oneDNN banners from C++ whatever TF_CPP_MIN_LOG_LEVEL says;
    the demo starts it with the native stderr pointed at /dev/null, then restores it."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        (tf.constant(1.0) + 1.0).numpy()  # the first op prints the second banner
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def train_torch_mlp(x: np.ndarray, y: np.ndarray, epochs: int = 200, seed: int = 0) -> Any:
    import torch

    from .testing.twins import mlp_weights, torch_mlp

    torch.manual_seed(seed)
    model = torch_mlp(mlp_weights(n_in=x.shape[1], hidden=16, n_out=2, seed=seed))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return model


def _tabular_part(frameworks: list[str], save: Any, digit: np.ndarray, cnn: Any) -> list[str]:
    """Breast-cancer MLP on every framework: shap's waterfall and decision plots from
    `to_shap()`, LIME bars; and a LIME explanation of one digit."""
    import matplotlib.pyplot as plt
    import shap
    from sklearn.datasets import load_breast_cancer

    import xai_core

    from .testing.twins import torch_weights, twin

    data = load_breast_cancer()
    x = data.data.astype(np.float32)
    x = (x - x.mean(0)) / x.std(0)
    order = np.random.default_rng(1).permutation(len(x))
    train, test = order[:450], order[450:]
    model = train_torch_mlp(x[train], data.target[train])
    weights = torch_weights(model)
    names = [str(n) for n in data.feature_names]
    lines = ["", "breast cancer MLP (30 features), the same weights on every framework:"]
    background, shown = x[train][:100], x[test][:8]
    for fw in frameworks:
        net = model if fw == "torch" else twin(fw, "mlp", weights)
        expl = xai_core.explain(  # one class (benign) for all: one base value in the plots
            net, shown, "kernel_shap", background=background, seed=0, feature_names=names, target=1
        )
        accuracy = float((net_predict(net, x[test]).argmax(1) == data.target[test]).mean())
        sv = expl.to_shap()
        shap.plots.waterfall(sv[0], show=False, max_display=10)
        save(plt.gcf(), f"shap_waterfall_{fw}.png")
        plt.figure()
        shap.plots.decision(float(sv.base_values[0]), sv.values, feature_names=names, show=False)
        save(plt.gcf(), f"shap_decision_{fw}.png")
        lime = xai_core.explain(
            net, shown[:2], "lime", background=background, seed=0, feature_names=names
        )
        save(lime.plot(top_k=8), f"lime_tabular_{fw}.png")
        gap = np.abs(expl.convergence_delta).max()
        lines.append(
            f"[{fw}] accuracy {accuracy:.3f}; kernel SHAP additivity max |gap| {gap:.1e}; "
            f"sample 0: base {sv.base_values[0]:+.3f} + sum(SHAP) {sv.values[0].sum():+.3f}"
        )
    lime_digit = xai_core.explain(cnn, digit, "lime", seed=0, n_samples=1000)
    save(lime_digit.plot(), "lime_image_torch.png")
    return lines


PERTURBATION_METHODS = [
    ("occlusion", {"window": (1, 2, 2), "strides": (1, 1, 1)}),
    (
        "feature_ablation",
        {
            "feature_mask": (np.arange(64).reshape(1, 8, 8) // 8 // 2) * 4
            + np.arange(8)[None, None] // 2
        },
    ),
    ("rise", {"n_masks": 500, "cell": 4, "seed": 0}),
]


def _onnx_part(cnn: Any, x: np.ndarray, out_dir: Path, save: Any) -> list[str]:
    """The digits CNN exported to ONNX (the artifact one deploys) explained with the
    forward-only methods next to the PyTorch original."""
    import warnings

    import torch

    import xai_core

    from .plotting import plot_comparison

    path = out_dir / "digits_cnn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            cnn.eval(),
            (torch.from_numpy(x[:1]),),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        )
    exported = xai_core.load_model(path)
    lines = ["", f"ONNX export ({path.name}), forward-only methods, next to the PyTorch original:"]
    shown = list(range(len(x)))
    results = {}
    for name, model in (("torch", cnn), ("onnx", exported)):
        results[name] = [xai_core.explain(model, x, m, **o) for m, o in PERTURBATION_METHODS]
        save(plot_comparison(results[name], shown), f"perturbation_{name}.png")
    for ours, reference in zip(results["onnx"], results["torch"]):
        scale = np.abs(reference.attributions).max()
        err = np.abs(ours.attributions - reference.attributions).max() / scale
        lines.append(f"[onnx] {ours.method}: max relative difference to PyTorch {err:.1e}")
    return lines


WORDS = [
    "<pad>",
    "the",
    "film",
    "plot",
    "was",
    "and",
    "not",
    "good",
    "great",
    "fun",
    "bad",
    "awful",
    "boring",
]
POSITIVE, NEGATIVE = {"good", "great", "fun"}, {"bad", "awful", "boring"}


def _sentences(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seven-token sentences over WORDS, labelled 1 when positive words outnumber negative."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, len(WORDS), (n, 7))
    ids[rng.uniform(size=(n, 7)) < 0.1] = 0  # some padding
    score = np.zeros(n)
    for word_id, word in enumerate(WORDS):
        sign = (word in POSITIVE) - (word in NEGATIVE)
        score += sign * (ids == word_id).sum(1)
    return ids, (score > 0).astype(np.int64)


def _text_part(frameworks: list[str], save: Any) -> list[str]:
    """A token classifier (embedding, mean, dense) trained on toy sentiment, explained
    with layer Integrated Gradients at the embedding on every framework."""
    import torch

    import xai_core

    from .testing.twins import text_weights, twin

    ids, labels = _sentences(2000, seed=3)
    torch.manual_seed(0)
    model = twin("torch", "text", text_weights(vocab=len(WORDS), dim=8, n_out=2)).train()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    x, y = torch.from_numpy(ids), torch.from_numpy(labels)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    weights = {
        "embed.table": model.embed.weight.detach().numpy().copy(),
        "fc.weight": model.fc.weight.detach().numpy().copy(),
        "fc.bias": model.fc.bias.detach().numpy().copy(),
    }
    shown = np.array([[1, 2, 4, 6, 7, 0, 0], [1, 3, 4, 12, 5, 8, 0]])  # not good / boring and great
    lines = ["", "token classifier (toy sentiment), layer IG at the embedding, pad baseline:"]
    reference = None
    for fw in frameworks:
        net = model if fw == "torch" else twin(fw, "text", weights)
        expl = xai_core.explain(
            net, shown, "integrated_gradients", layer="embed", baselines=0, target=1
        )
        scores = expl.per_token()
        for i, row in enumerate(shown):
            tokens = [WORDS[t] for t in row]
            fig = expl.plot_text(tokens, sample=i, title=f"{fw}: layer IG, class positive")
            save(fig, f"text_ig_{fw}_{i}.png")
        if reference is None:
            reference = scores
            accuracy = float((net_predict(net, ids).argmax(1) == labels).mean())
            lines.append(f"[{fw}] training accuracy {accuracy:.3f}")
        else:
            err = np.abs(scores - reference).max() / np.abs(reference).max()
            lines.append(f"[{fw}] per-token scores: max relative difference to PyTorch {err:.1e}")
    return lines


#: the toy language the demo's language model learns: subject, verb, place
SUBJECTS, VERBS, PLACES = ["the cat", "a dog", "the bird"], ["sat on", "ran to"], ["mat", "park"]


def _generation_part(frameworks: list[str], save: Any) -> list[str]:
    """A small causal language model (embedding, causal mean, tanh, logits) trained on
    toy sentences, its continuation of a prompt explained by explain_text on every
    framework: token heatmaps (rows the generated tokens, columns the prompt's)."""
    import torch

    import xai_core

    from .testing.tokenizers import word_tokenizer
    from .testing.twins import text_lm_weights, twin

    sentences = [f"{s} {v} the {p} ." for s in SUBJECTS for v in VERBS for p in PLACES]
    tokenizer = word_tokenizer(" ".join(sentences).split())
    batch = torch.tensor([tokenizer(s).input_ids for s in sentences])
    torch.manual_seed(0)
    model = twin("torch", "text_lm", text_lm_weights(len(tokenizer), dim=12, hidden=24)).train()
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(300):
        opt.zero_grad()
        logits = model(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
        loss.backward()
        opt.step()
    model.eval()
    weights = {
        ("embed.table" if k == "embed.weight" else k): v.detach().numpy().copy()
        for k, v in model.state_dict().items()
    }
    prompt = "a dog ran"
    lines = ["", f"language model (toy sentences, loss {loss.item():.2f}), explain_text:"]
    reference = None
    for fw in frameworks:
        net = model if fw == "torch" else twin(fw, "text_lm", weights)
        expl = xai_core.explain_text(
            net, tokenizer, prompt, "integrated_gradients", max_new_tokens=4, n_steps=32
        )
        title = f"{fw}: layer IG of its continuation of {prompt!r}"
        save(expl.plot(title=title), f"text_generation_{fw}.png")
        if reference is None:
            reference = expl
            lines.append(f"[{fw}] {prompt!r} -> {' '.join(expl.output_tokens)!r}")
        else:
            err = np.abs(expl.attributions - reference.attributions).max() / max(
                np.abs(reference.attributions).max(), 1e-12
            )
            same = expl.output_tokens == reference.output_tokens
            lines.append(
                f"[{fw}] continuation {'the same' if same else 'DIFFERENT'}; token scores: "
                f"max relative difference to PyTorch {err:.1e}"
            )
    return lines


def net_predict(model: Any, x: np.ndarray) -> np.ndarray:
    import xai_core

    return xai_core.adapt(model).forward(x)
