"""Tiny text models from configs (random weights) with tokenizers built here (no download):
a GPT-2 with a word-level tokenizer that adds a BOS token, a BERT classifier with a
WordPiece tokenizer (words split into pieces, [CLS] ... [SEP])."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
)

from xai_core.testing.tokenizers import word_tokenizer

WORDS = (
    "the a cat dog sat on mat and ran to park it was good bad very not film movie "
    "i liked hated this story ending"
).split()
PIECES = ["play", "##ing", "##ed", "##s", "un", "##believ", "##able", "great", "##ly"]


def gpt2_tokenizer() -> PreTrainedTokenizerFast:
    return word_tokenizer([*WORDS, "."])


def bert_tokenizer() -> PreTrainedTokenizerFast:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate([*specials, *WORDS, *PIECES, "."])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        unk_token="[UNK]",
        mask_token="[MASK]",
    )


def tiny_gpt2(vocab: int, seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab, n_positions=32, n_embd=16, n_layer=2, n_head=2, initializer_range=0.3
    )
    return GPT2LMHeadModel(config).eval()


def tiny_bert_classifier(vocab: int, seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=3,
        initializer_range=0.3,
        id2label={0: "negative", 1: "neutral", 2: "positive"},
        label2id={"negative": 0, "neutral": 1, "positive": 2},
    )
    return BertForSequenceClassification(config).eval()


def tiny_bart(vocab: int, seed: int = 0, **config: object):
    """An encoder-decoder (BART) whose encoder and decoder have their own embedding modules."""
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(seed)
    settings = dict(
        vocab_size=vocab,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=32,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
        decoder_start_token_id=3,
        forced_eos_token_id=None,
        init_std=0.3,
    )
    return BartForConditionalGeneration(BartConfig(**{**settings, **config})).eval()
