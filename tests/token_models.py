"""Tiny HuggingFace text models from configs (random weights) and token ids, shared by
the tests of token-id models."""

from __future__ import annotations

import numpy as np
import torch
from transformers import (
    DistilBertConfig,
    DistilBertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
)

VOCAB, PAD = 40, 0


def token_ids(n: int = 3, length: int = 9, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, VOCAB, (n, length))


def gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=VOCAB, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    return GPT2LMHeadModel(config).eval()


def distilbert() -> DistilBertForSequenceClassification:
    torch.manual_seed(0)
    config = DistilBertConfig(
        vocab_size=VOCAB, dim=16, hidden_dim=32, n_layers=1, n_heads=2, max_position_embeddings=16
    )
    return DistilBertForSequenceClassification(config).eval()
