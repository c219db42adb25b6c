"""Hand-written torch models the graph family must handle, each an ordinary ``nn.Module``
(builders take keyword arguments only, so a run can rebuild them from an import path)."""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """A user's ResNet: identity and projection shortcuts, two blocks per stage."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        self.layer1 = nn.Sequential(BasicBlock(width, width), BasicBlock(width, width))
        self.layer2 = nn.Sequential(BasicBlock(width, 2 * width, 2), BasicBlock(2 * width, 2 * width),
                                    BasicBlock(2 * width, 2 * width))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def small_resnet(num_classes: int = 10, in_channels: int = 1, width: int = 16) -> nn.Module:
    return SmallResNet(num_classes, in_channels, width)


class DenseNetStyle(nn.Module):
    """Each layer reads the concatenation of everything before it; a transition and a flatten-linear head."""

    def __init__(self, num_classes: int = 10, growth: int = 8):
        super().__init__()
        self.stem = nn.Conv2d(1, 12, 3, padding=1)
        self.layers = nn.ModuleList(nn.Sequential(nn.BatchNorm2d(12 + i * growth), nn.ReLU(),
                                                  nn.Conv2d(12 + i * growth, growth, 3, padding=1))
                                    for i in range(3))
        self.transition = nn.Conv2d(12 + 3 * growth, 16, 1)
        self.pool = nn.AvgPool2d(4)
        self.head = nn.Linear(16 * 4 * 4, num_classes)

    def forward(self, x):
        features = [self.stem(x)]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        x = self.pool(self.transition(torch.cat(features, 1)))
        return self.head(x.view(x.size(0), -1))


class InceptionStyle(nn.Module):
    """Parallel branches (1x1, 3x3, factorised 1x3 + 3x1, pooling) concatenated, projected, then
    squeeze-excitation."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.b1 = nn.Conv2d(16, 8, 1)
        self.b3 = nn.Sequential(nn.Conv2d(16, 12, 1), nn.ReLU(), nn.Conv2d(12, 8, 3, padding=1))
        self.bf = nn.Sequential(nn.Conv2d(16, 8, (1, 3), padding=(0, 1)), nn.Conv2d(8, 8, (3, 1), padding=(1, 0)))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(16, 8, 1))
        self.project = nn.Conv2d(32, 32, 1)
        self.se_reduce = nn.Conv2d(32, 8, 1)
        self.se_expand = nn.Conv2d(8, 32, 1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = self.project(torch.cat([self.b1(x), self.b3(x), self.bf(x), self.bp(x)], dim=1))
        scale = torch.sigmoid(self.se_expand(torch.relu(self.se_reduce(x.mean((2, 3), keepdim=True)))))
        return self.fc((x * scale).mean((2, 3)))


class ConvNeXtStyle(nn.Module):
    """Depthwise 7x7 conv, channels-last LayerNorm between permutes, inverted MLP, residual."""

    def __init__(self, num_classes: int = 10, dim: int = 16):
        super().__init__()
        self.stem = nn.Conv2d(1, dim, 2, 2)
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim) for _ in range(2))
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.fc(self.norm(x.mean((-2, -1))))


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.up = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.down = nn.Linear(4 * dim, dim)

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.down(self.act(self.up(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class SharedConv(nn.Module):
    """One conv called twice (weights shared): both calls must keep the same channels."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.shared = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(self.shared(x))
        x = torch.relu(self.shared(x))
        return self.fc(x.mean((2, 3)))


class DataDependent(nn.Module):
    """Branches on a tensor's value: no static graph exists."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        y = self.conv(x)
        if y.sum() > 0:
            y = -y
        return self.fc(y.mean((2, 3)))


class UnknownOp(nn.Module):
    """A channel shuffle (roll) nobody can prove width-safe: its group must stay fixed."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.b(torch.roll(self.a(x), 1, dims=1)).mean((2, 3)))


class AttentionBlock(nn.Module):
    """A pre-norm transformer block around torch's ``nn.MultiheadAttention``."""

    def __init__(self, dim: int, heads: int, batch_first: bool, causal_tokens: int = 0):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=batch_first)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.batch_first = batch_first
        mask = torch.ones(causal_tokens, causal_tokens, dtype=torch.bool).triu(1) if causal_tokens else None
        self.register_buffer("mask", mask)

    def forward(self, x):  # x: (N, L, E)
        y = self.norm1(x) if self.batch_first else self.norm1(x).transpose(0, 1)
        if self.mask is None:
            y, _ = self.attn(y, y, y)  # the default need_weights=True: the unused weights must not fix heads
        else:
            y = self.attn(y, y, y, attn_mask=self.mask, need_weights=False)[0]
        x = x + (y if self.batch_first else y.transpose(0, 1))
        return x + self.mlp(self.norm2(x))


class TorchAttention(nn.Module):
    """Patches, a position embedding and two blocks of ``nn.MultiheadAttention`` (batch first and
    sequence first with a causal mask): heads and MLP widths become elastic."""

    def __init__(self, num_classes: int = 10, dim: int = 32, heads: int = 4, patch: int = 4, size: int = 16):
        super().__init__()
        tokens = (size // patch) ** 2
        self.patches = nn.Conv2d(1, dim, patch, patch)
        self.position = nn.Parameter(torch.zeros(1, tokens, dim))
        self.blocks = nn.Sequential(AttentionBlock(dim, heads, True), AttentionBlock(dim, heads, False, tokens))
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patches(x).flatten(2).transpose(1, 2) + self.position
        return self.fc(self.norm(self.blocks(x)).mean(1))


HAND_WRITTEN = {"resnet": SmallResNet, "densenet": DenseNetStyle, "inception_se": InceptionStyle,
                "convnext": ConvNeXtStyle, "shared": SharedConv, "torch_attention": TorchAttention}
