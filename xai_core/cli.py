"""The `xai` command: `xai plugins`, `xai demo`, `xai summary`, `xai compare`, `xai explain`,
`xai explain-text`, `xai report`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from .errors import XaiError
from .explainer import COMMON_OPTIONS


def _plugins(args: argparse.Namespace) -> int:
    from .api import plugins
    from .registry import REGISTRY

    records = plugins()
    try:
        explainer_table = REGISTRY.explainer_table()
        clashes = REGISTRY.clashes()
        clash = "; ".join(str(REGISTRY._clash_error(name)) for name in clashes) or None
    except Exception as exc:  # noqa: BLE001 - shown, not raised: this command diagnoses
        explainer_table, clash = {}, str(exc)
    try:
        metric_table = REGISTRY.metric_table()
        clash = (
            "; ".join(
                [
                    clash or "",
                    *(str(REGISTRY._clash_error(n, "metric")) for n in REGISTRY.clashes("metric")),
                ]
            ).strip("; ")
            or None
        )
    except Exception as exc:  # noqa: BLE001
        metric_table, clash = {}, str(exc)
    methods = {
        name: {
            "plugin": plugin,
            "requires": list(cls.requires),
            "options": sorted({*cls.defaults, *COMMON_OPTIONS}),
        }
        for name, (cls, plugin) in explainer_table.items()
    }
    metrics = {
        name: {
            "plugin": plugin,
            "requires": list(cls.requires),
            "higher_is_better": cls.higher_is_better,
            "options": sorted({*cls.defaults, *COMMON_OPTIONS}),
        }
        for name, (cls, plugin) in metric_table.items()
    }
    if args.json:
        print(
            json.dumps(
                {"plugins": records, "methods": methods, "metrics": metrics, "error": clash},
                indent=2,
            )
        )
        return 0
    groups = ("xai_core.backends", "xai_core.explainers", "xai_core.metrics", "xai_core.engines")
    for group in (*groups, "runtime"):
        rows = [r for r in records if r["group"] == group]
        if not rows:
            continue
        print(f"{group}:")
        for r in rows:
            dist = f"{r['distribution']} {r['version']}" if r["distribution"] else "(runtime)"
            line = f"  {r['name']:<22} {r['status']:<9} {dist:<24} {r['value']}"
            print(line)
            if r["error"]:
                print(f"      ! {r['error']}")
    if methods:
        print("methods (needs from the backend; options):")
        for name, info in methods.items():
            print(f"  {name:<22} {', '.join(info['requires']):<22} {', '.join(info['options'])}")
    if metrics:
        print("metrics (better; options):")
        better = {True: "higher", False: "lower", None: "-"}
        for name, info in metrics.items():
            print(
                f"  {name:<26} {better[info['higher_is_better']]:<7} {', '.join(info['options'])}"
            )
    if clash:
        print(f"error: {clash}")
    return 0


def _parse_value(text: str) -> Any:
    """An option value from the shell: JSON (numbers, true/false, lists), the array in a
    `.npy` file (a background for SHAP or LIME, baselines), else the string."""
    if text.endswith(".npy"):
        import numpy as np

        try:
            return np.load(text, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise XaiError(f"cannot read the option's array {text!r}: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise XaiError(f"--option takes key=value (e.g. seed=0, steps=50), not {pair!r}.")
        options[key] = _parse_value(value)
    return options


def _explain(args: argparse.Namespace) -> int:
    import numpy as np

    from .dataset import explain_dataset

    engine_options = {}
    if args.engine == "ray":
        engine_options = {"address": args.address, "num_workers": args.workers}
    target = None if args.target is None else _parse_value(args.target)
    results = explain_dataset(
        args.model,
        args.data,
        args.method,
        out=args.out,
        target=target,
        batch_size=args.batch_size,
        engine=args.engine,
        engine_options=engine_options,
        overwrite=args.overwrite,
        trust=args.trust,
        **_parse_options(args.option),
    )
    a = results.attributions
    shape = tuple(a.shape) if a is not None and hasattr(a, "shape") else None
    last = results[max(len(results) - 1, 0) : len(results)]
    mean_abs = (
        float(np.abs(np.asarray(last.attributions)).mean())
        if isinstance(last.attributions, np.ndarray) and last.attributions.size
        else float("nan")
    )
    print(f"results in {args.out}")
    print(
        f"{results.method}: {len(results)} rows, attributions {shape}, "
        f"{'complete' if results.complete else 'incomplete (rerun to resume)'}; "
        f"last row mean |attribution| {mean_abs:.3g}"
    )
    return 0


def _model_and_inputs(args: argparse.Namespace) -> tuple[Any, Any]:
    """The saved model (code in it runs only with --trust) and the inputs of a .npy file
    (never unpickled), for `xai compare` and `xai report`."""
    import numpy as np

    from .loading import load_model

    model = load_model(args.model, trust=args.trust)
    try:
        inputs = np.load(args.data, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise XaiError(f"cannot read {args.data!r} as a .npy array: {exc}") from exc
    return model, inputs


def _compare(args: argparse.Namespace) -> int:
    from .evaluation import compare

    _check_writable(args.plot, "--plot")  # before the whole run, not after it
    model, inputs = _model_and_inputs(args)
    methods = [m for m in args.methods.split(",") if m]
    metrics = [m for m in args.metrics.split(",") if m]
    target = None if args.target is None else _parse_value(args.target)
    comparison = compare(
        model,
        inputs,
        methods,
        metrics,
        target=target,
        progress=False,
        **_parse_options(args.option),
    )
    print(comparison.to_markdown())
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        comparison.plot().savefig(args.plot, dpi=110)
        print(f"figure written to {args.plot}")
    return 0


def _explain_text(args: argparse.Namespace) -> int:
    from .loading import load_text_model
    from .text import explain_text

    _check_writable(args.plot, "--plot")
    _check_writable(args.html, "--html")
    model, tokenizer = load_text_model(args.model_dir, trust=args.trust)
    target = args.target
    if target is not None and target.isdigit():
        target = int(target)  # a class index; a continuation or a label stays a string
    result = explain_text(
        model,
        tokenizer,
        args.text,
        args.method,
        target=target,
        features=args.features,
        max_new_tokens=args.max_new_tokens,
        **_parse_options(args.option),
    )
    print(result)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        result.plot().savefig(args.plot, dpi=110, bbox_inches="tight")
        print(f"heatmap written to {args.plot}")
    if args.html:
        with open(args.html, "w", encoding="utf-8") as page:
            page.write(f"<!doctype html><meta charset='utf-8'>{result.to_html()}")
        print(f"page written to {args.html}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .reporting import report

    _check_writable(args.out, "--out")
    model, inputs = _model_and_inputs(args)
    report(
        model,
        inputs,
        [m for m in args.methods.split(",") if m],
        [m for m in args.metrics.split(",") if m],
        target=None if args.target is None else _parse_value(args.target),
        out=args.out,
        progress=False,
        **_parse_options(args.option),
    )
    print(f"report written to {args.out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    out = run_demo(args.out, frameworks=args.frameworks, n_images=args.n_images)
    print(f"demo figures and summary written to {out}")
    return 0


def _summary(args: argparse.Namespace) -> int:
    import importlib

    import numpy as np

    from .loading import load_model

    summary = importlib.import_module("xai_core").summary  # (see reporting._summary)

    _check_writable(args.plot, "--plot")
    inputs = None
    if args.input_shape:
        try:
            shape = tuple(int(d) for d in args.input_shape.split(","))
        except ValueError as exc:
            raise XaiError(
                f"--input-shape takes integers like 1,28,28, not {args.input_shape!r}"
            ) from exc
        if not shape or any(d < 1 for d in shape) or int(np.prod(shape, dtype=object)) > 2**28:
            raise XaiError(
                f"--input-shape {args.input_shape!r} is not the shape of one sample: give "
                "positive sizes (at most 2**28 values in all), like 1,28,28."
            )
    model = load_model(args.path, trust=args.trust)
    if args.input_shape:
        inputs = np.zeros((1, *shape), dtype=np.float32)
    result = summary(model, inputs)
    print(result)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        result.plot().savefig(args.plot, dpi=110)
        print(f"drawing written to {args.plot}")
    return 0


def _check_writable(path: str | None, flag: str) -> None:
    """A figure's folder must exist before the run that draws it starts."""
    import os

    if path:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise XaiError(f"{flag} {path!r}: the folder {folder!r} does not exist.")
        if not os.access(folder, os.W_OK):
            raise XaiError(f"{flag} {path!r}: the folder {folder!r} is not writable.")


def _quiet_frameworks() -> None:
    """A user of the command wants its output, not the frameworks' start-up banners."""
    import os
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "2")
    warnings.filterwarnings("ignore", message="No ccache found")


def main(argv: Sequence[str] | None = None) -> int:
    _quiet_frameworks()
    parser = argparse.ArgumentParser(
        prog="xai", description="Explain neural networks, any framework."
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"xai-core {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plugins", help="list backends and explainers, with versions and failures")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_plugins)
    d = sub.add_parser("demo", help="train a small digits CNN, explain it, write figures")
    d.add_argument("--out", default="xai-demo", help="output folder (default: ./xai-demo)")
    d.add_argument(
        "--frameworks",
        nargs="*",
        default=None,
        help="frameworks to show (default: every installed one of torch, tensorflow, paddle)",
    )
    d.add_argument("--n-images", type=int, default=6, help="held-out digits to explain")
    d.set_defaults(func=_demo)
    m = sub.add_parser("summary", help="layer table (and drawing) of a saved model")
    m.add_argument("path", help="a .pt/.pth, .keras/.h5 file or a paddle.jit.save prefix")
    m.add_argument("--input-shape", help="one sample's shape, e.g. 1,28,28, to fill output shapes")
    m.add_argument("--plot", help="write the network drawing to this PNG")
    m.add_argument(
        "--trust",
        action="store_true",
        help="allow files that run code when loaded (pickled PyTorch modules, Keras lambdas)",
    )
    m.set_defaults(func=_summary)
    e = sub.add_parser("explain", help="explain a whole dataset into a Zarr store (resumable)")
    e.add_argument("model", help="a saved model (.pt, .keras, paddle prefix, .onnx)")
    e.add_argument("data", help=".npy/.npz file, folder of images or Parquet table")
    e.add_argument("--method", required=True, help="explanation method (xai plugins lists them)")
    e.add_argument("--out", required=True, help="Zarr store: a path or an fsspec URL")
    e.add_argument(
        "--option", action="append", default=[], help="key=value for the method, e.g. seed=0"
    )
    e.add_argument("--target", help="class to explain, or a Parquet column of targets")
    e.add_argument("--batch-size", type=int, default=256, help="rows per batch (and chunk)")
    e.add_argument("--engine", default="local", help="local (default) or ray")
    e.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    e.add_argument("--workers", type=int, default=2, help="Ray workers (actors)")
    e.add_argument("--overwrite", action="store_true", help="replace a store of another run")
    e.add_argument("--trust", action="store_true", help="allow files that run code when loaded")
    e.set_defaults(func=_explain)
    c = sub.add_parser("compare", help="score explanation methods on a saved model and inputs")
    c.add_argument("model", help="a saved model (.pt, .keras, paddle prefix, .onnx)")
    c.add_argument("data", help="inputs as a .npy array, batch first, in the model's layout")
    c.add_argument(
        "--methods", default="saliency,integrated_gradients", help="comma-separated methods"
    )
    c.add_argument(
        "--metrics",
        default="deletion,insertion,infidelity,sensitivity_max,sparseness",
        help="comma-separated metrics (xai plugins lists them)",
    )
    c.add_argument("--target", help="class to explain (default: each sample's prediction)")
    c.add_argument(
        "--option",
        action="append",
        default=[],
        help="key=value for every method and metric with that option, e.g. seed=0",
    )
    c.add_argument("--plot", help="write the comparison figure to this PNG")
    c.add_argument("--trust", action="store_true", help="allow files that run code when loaded")
    c.set_defaults(func=_compare)
    r = sub.add_parser("report", help="one self-contained HTML page: explanations, scores")
    r.add_argument("model", help="a saved model (.pt, .keras, paddle prefix, .onnx)")
    r.add_argument("data", help="inputs as a .npy array, batch first, in the model's layout")
    r.add_argument("--methods", default="saliency,integrated_gradients", help="comma-separated")
    r.add_argument("--metrics", default="deletion,insertion", help="comma-separated metrics")
    r.add_argument("--target", help="class to explain (default: each sample's prediction)")
    r.add_argument("--option", action="append", default=[], help="key=value, as for compare")
    r.add_argument("--out", default="report.html", help="the page to write")
    r.add_argument("--trust", action="store_true", help="allow files that run code when loaded")
    r.set_defaults(func=_report)
    t = sub.add_parser("explain-text", help="explain a saved HF text model's answer to a text")
    t.add_argument("model_dir", help="a HuggingFace model folder with its tokenizer")
    t.add_argument("text", help="the prompt or the text to classify")
    t.add_argument("--method", default="integrated_gradients", help="explanation method")
    t.add_argument(
        "--target",
        help="a continuation to explain (language models; default: the model's own), or a "
        "class index or label (classifiers; default: the predicted class)",
    )
    t.add_argument("--features", default="tokens", choices=["tokens", "words"])
    t.add_argument("--max-new-tokens", type=int, default=8, help="length of the own continuation")
    t.add_argument("--option", action="append", default=[], help="key=value for the method")
    t.add_argument("--plot", help="write the token heatmap to this PNG")
    t.add_argument("--html", help="write the coloured text to this HTML file")
    t.add_argument(
        "--trust",
        action="store_true",
        help="allow pickled weights and the folder's own model code (both run code when loaded)",
    )
    t.set_defaults(func=_explain_text)
    args = parser.parse_args(argv)

    try:
        return args.func(args)
    except XaiError as exc:
        print(f"xai: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
