"""The patterns real PyTorch vision models are built from, written torchvision-style.

torchvision's wheels here do not load on the CPU torch, so its building blocks are
written out: BatchNorm, `ReLU(inplace=True)`, `out += identity`, residual and
depthwise-separable blocks, and a small vision transformer. Names follow
torchvision (`layer1.0.bn1`), so tests read like they would on a real ResNet.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock, in-place ReLUs and `out += identity` included."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class ResNet(nn.Module):
    """torchvision's ResNet layout; `widths=(64, 128, 256, 512)` is ResNet-18."""

    def __init__(self, widths=(8, 16), blocks=(1, 1), n_classes: int = 5, channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(2)
        c = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            layers = [BasicBlock(c, w, 1 if i == 0 else 2)]
            layers += [BasicBlock(w, w) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
            c = w
        self.n_stages = len(widths)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, n_classes)

    def stem(self, x):
        """conv1-bn1-relu-maxpool without in-place ops: a reference for the tests."""
        return self.maxpool(torch.relu(self.bn1(self.conv1(x))))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet(seed: int = 0, **kwargs) -> ResNet:
    """A small ResNet in eval mode with non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    model = ResNet(**kwargs)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


def resnet18(seed: int = 0, n_classes: int = 10) -> ResNet:
    """ResNet-18's widths and depths (11 M parameters)."""
    return resnet(seed, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), n_classes=n_classes)


class DepthwiseSeparable(nn.Module):
    """MobileNet's block: depthwise 3x3 - BN - ReLU6(inplace) - pointwise 1x1 - BN."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, 3, 1, 1, groups=c_in, bias=False)
        self.bn1 = nn.BatchNorm2d(c_in)
        self.act = nn.ReLU6(inplace=True)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x):
        return self.bn2(self.pointwise(self.act(self.bn1(self.depthwise(x)))))


class MobileNetish(nn.Module):
    def __init__(self, n_classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU6(True))
        self.block = DepthwiseSeparable(8, 16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, n_classes)

    def forward(self, x):
        return self.head(torch.flatten(self.pool(self.block(self.stem(x))), 1))


class TinyViT(nn.Module):
    """Patch embedding, a class token, two pre-norm encoder layers, a linear head."""

    def __init__(self, image: int = 16, patch: int = 4, dim: int = 16, n_classes: int = 3):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        n_tokens = (image // patch) ** 2
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.1)
        self.pos_embed = nn.Parameter(torch.randn(1, n_tokens + 1, dim) * 0.1)
        layer = nn.TransformerEncoderLayer(
            dim, 2, 32, dropout=0.1, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x):
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(len(x), -1, -1)
        tokens = torch.cat([cls, tokens], 1) + self.pos_embed
        return self.head(self.norm(self.encoder(tokens))[:, 0])


def vit(seed: int = 0) -> TinyViT:
    torch.manual_seed(seed)
    return TinyViT().eval()


def tiny_bert(
    vocab: int = 60, hidden: int = 16, heads: int = 2, max_len: int = 16, labels: int = 3
):
    """A randomly initialised HuggingFace BERT classifier (token ids + attention mask in,
    a `SequenceClassifierOutput` out), small enough for tests; seeded."""
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=max_len,
        num_labels=labels,
    )
    return transformers.BertForSequenceClassification(config).eval()
