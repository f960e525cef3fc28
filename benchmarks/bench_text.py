"""explain_text vs Captum's LLMAttribution / LLMGradientAttribution on the same work
(issue 23): a 64-token prompt, a 16-token continuation, a small GPT-2 (random weights,
a word-level tokenizer built here). Feature ablation and layer IG (16 steps); Captum's
feature ablation both ways it runs (token by token with its KV cache, its default, and
the whole sequence per perturbation). Target: <= 0.8x Captum.

    python benchmarks/bench_text.py
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("USE_TF", "0")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

import torch  # noqa: E402
from captum.attr import (  # noqa: E402
    FeatureAblation,
    LayerIntegratedGradients,
    LLMAttribution,
    LLMGradientAttribution,
    TextTokenInput,
)
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

import xai_core  # noqa: E402

from text_fixtures import WORDS, gpt2_tokenizer  # noqa: E402
from timing import interleaved, report  # noqa: E402

warnings.simplefilter("ignore")
torch.manual_seed(0)
tokenizer = gpt2_tokenizer()
config = GPT2Config(
    vocab_size=len(tokenizer),
    n_positions=128,
    n_embd=64,
    n_layer=2,
    n_head=4,
    initializer_range=0.3,
)
model = GPT2LMHeadModel(config).eval()
prompt = " ".join(WORDS[i % len(WORDS)] for i in range(64))
continuation = " ".join(WORDS[(7 * i) % len(WORDS)] for i in range(16))
assert len(tokenizer(prompt).input_ids) == 65  # 64 tokens and BOS
text_input = TextTokenInput(
    prompt, tokenizer, baselines=tokenizer.pad_token_id, skip_tokens=[tokenizer.bos_token_id]
)
fa = LLMAttribution(FeatureAblation(model), tokenizer)
lig = LLMGradientAttribution(LayerIntegratedGradients(model, model.transformer.wte), tokenizer)

with torch.no_grad():
    cases = {
        "feature_ablation": {
            "xai_core": lambda: xai_core.explain_text(
                model, tokenizer, prompt, "feature_ablation", target=continuation
            ),
            "captum (token by token, cached)": lambda: fa.attribute(
                text_input, target=continuation
            ),
            "captum (whole sequence)": lambda: fa.attribute(
                text_input, target=continuation, forward_in_tokens=False
            ),
        },
    }
cases["layer integrated_gradients, 16 steps"] = {
    "xai_core": lambda: xai_core.explain_text(
        model, tokenizer, prompt, target=continuation, n_steps=16
    ),
    "captum": lambda: lig.attribute(text_input, target=continuation, n_steps=16),
}

if __name__ == "__main__":
    for title, candidates in cases.items():
        medians = interleaved(candidates, repeats=5, warmup=1)
        report(f"[torch] {title}: 64-token prompt, 16-token continuation", medians, "xai_core")
        best = min(v for k, v in medians.items() if k != "xai_core")
        print(f"  xai_core / fastest captum: {medians['xai_core'] / best:.3f}")
