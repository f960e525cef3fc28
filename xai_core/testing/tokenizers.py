"""Word-level HuggingFace tokenizers built on the spot (no download): for the demo, the
tests and the README's text example. Needs `tokenizers` and `transformers`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")


def word_tokenizer(words: Sequence[str]) -> Any:
    """One token per word (split at whitespace and punctuation), `<bos>` put first, like
    GPT-2's tokenizer; ids 0..3 are `<pad>`, `<unk>`, `<bos>`, `<eos>`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate([*SPECIALS, *dict.fromkeys(words)])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
