"""torch's ``nn.MultiheadAttention`` inside a model made elastic: it is split into q/k/v/out
projections that compute what torch computes, and its heads shrink whole."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from elasticnas.hardware import count_macs
from elasticnas.supernet.families.graph import elasticize
from elasticnas.supernet.families.graph.attention import SplitAttention
from tests.conftest import randomise_
from tests.supernet import graph_models

# Separate projections sum the same terms as torch's fused one, and the softmax and products run
# on the same values; only kernels' summation order differs: 1e-5 of outputs of order 1 is wide.
TOLERANCE = 1e-5


def _inputs(batch_first: bool, length: int = 5, source: int = 7, dims=(16, 16, 16)):
    gen = torch.Generator().manual_seed(0)
    shapes = [(2, length, dims[0]), (2, source, dims[1]), (2, source, dims[2])]
    tensors = [torch.randn(s, generator=gen) for s in shapes]
    return tensors if batch_first else [t.transpose(0, 1) for t in tensors]


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("kdim", [None, 12])
def test_the_split_form_computes_what_torch_computes(batch_first, kdim):
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(16, 4, batch_first=batch_first, kdim=kdim, vdim=kdim).eval()
    randomise_(attention, 1)
    split = SplitAttention(attention).eval()
    dims = (16, kdim or 16, kdim or 16)
    q, k, v = _inputs(batch_first, dims=dims)
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[1, -2:] = True  # the second sequence's last two keys are padding
    per_head = torch.randn(2 * 4, 5, 7)  # a float mask, one per (sample, head)
    cases = [{}, {"need_weights": False}, {"key_padding_mask": padding},
             {"attn_mask": per_head, "average_attn_weights": False},
             {"attn_mask": torch.ones(5, 7, dtype=torch.bool).triu(1), "key_padding_mask": padding}]
    with torch.no_grad():
        for kwargs in cases:
            expected, expected_weights = attention(q, k, v, **kwargs)
            actual, weights = split(q, k, v, **kwargs)
            torch.testing.assert_close(actual, expected, rtol=0, atol=TOLERANCE)
            if expected_weights is None:
                assert weights is None
            else:
                torch.testing.assert_close(weights, expected_weights, rtol=0, atol=TOLERANCE)
        unbatched = [t[:, 0] if not batch_first else t[0] for t in (q, k, v)]
        torch.testing.assert_close(split(*unbatched)[0], attention(*unbatched)[0], rtol=0, atol=TOLERANCE)


def test_its_heads_become_elastic_and_the_explain_table_says_so():
    model = graph_models.TorchAttention()
    randomise_(model, 0)
    net = elasticize(model.eval(), torch.randn(2, 1, 16, 16))
    heads = [w for w in net.space.widths if w.unit > 1]
    assert [(w.label, w.channels, w.unit, w.choices) for w in heads] == [
        ("blocks.0.attn.q_proj", 32, 8, (16, 24, 32)), ("blocks.1.attn.q_proj", 32, 8, (16, 24, 32))]
    rows = {row[1]: row for row in net.report if row[0] == "module"}
    assert rows["blocks.0.attn"][3] == rows["blocks.1.attn"][3] == "split"
    assert not any(isinstance(m, nn.MultiheadAttention) for m in net.modules())
    assert isinstance(model.blocks[0].attn, nn.MultiheadAttention)  # the user's model is left as it was


def test_attention_products_are_counted_by_hand():
    # 16 tokens of 32 channels. Keeping 2 of block 0's 4 heads drops 16 channels: q k^T and weights v
    # each cost 16 x 16 MACs per channel, q/k/v each 16 tokens x 32 inputs per output channel, and
    # the output projection 16 tokens x 32 outputs per input channel.
    model = graph_models.TorchAttention().eval()
    space = elasticize(model, torch.randn(2, 1, 16, 16)).space
    heads = next(i for i, w in enumerate(space.widths) if w.unit > 1)
    wide = space.max()
    narrow = dataclasses.replace(wide, widths=tuple(16 if i == heads else w for i, w in enumerate(wide.widths)))
    assert count_macs(space, wide) - count_macs(space, narrow) == 2 * 16 * 16 * 16 + 4 * 16 * 32 * 16


def test_attention_with_extra_key_value_biases_is_kept_whole_and_reported():
    model = graph_models.TorchAttention()
    block = model.blocks[0]
    block.attn = nn.MultiheadAttention(32, 4, batch_first=True, add_bias_kv=True)
    net = elasticize(model.eval(), torch.randn(2, 1, 16, 16))
    rows = {row[1]: row for row in net.report if row[0] == "module"}
    assert rows["blocks.0.attn"][3] == "fixed" and "add_bias_kv" in rows["blocks.0.attn"][4]
    with torch.no_grad():
        x = torch.randn(2, 1, 16, 16)
        torch.testing.assert_close(net(x, net.space.max()), model(x), rtol=0, atol=1e-4)


class _Encoder(nn.Module):
    """Token features through torch's own encoder layer, which reads its attention's fused weights."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(8, 32)
        self.encoder = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(1))


def test_attention_inside_a_layer_that_runs_whole_is_left_to_it():
    model = _Encoder().eval()
    randomise_(model, 2)
    x = torch.randn(2, 5, 8)
    net = elasticize(model, x)
    rows = {row[1]: row for row in net.report if row[0] == "module"}
    assert rows["encoder.self_attn"][3] == "fixed" and "TransformerEncoderLayer" in rows["encoder.self_attn"][4]
    assert rows["encoder"][3] == "fixed"  # the encoder layer itself: its widths stay, and --explain says so
    with torch.no_grad():
        torch.testing.assert_close(net(x, net.space.max()), model(x), rtol=0, atol=1e-4)
    leaf = elasticize(graph_models.TorchAttention().eval(), torch.randn(2, 1, 16, 16),
                      leaves=[graph_models.AttentionBlock])
    assert all(row[3] == "fixed" for row in leaf.report if row[0] == "module" and row[1].endswith(".attn"))
