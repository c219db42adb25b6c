"""The graph family on ``transformers`` models (ResNet, MobileNetV2, EfficientNet, ConvNeXt, ViT, BERT, GPT-2,
Llama) built from configs with random weights: what becomes elastic, and that every subnet extracts to a
plain model equal to the supernet and exports. Skipped without the ``models`` extra."""

from __future__ import annotations

import pytest
import torch

from elasticnas.export import export_program
from elasticnas.hardware import count_macs, count_params
from elasticnas.hardware.runtime_parts import export_onnx_bytes
from elasticnas.supernet.families.graph import elasticize
from tests.conftest import hook_counts

pytest.importorskip("transformers", reason='the model zoo of these tests: pip install -e ".[models]"')

from tests.supernet import zoo_models  # noqa: E402  (imports transformers lazily, but only when it is there)

# (elastic widths, stages of droppable blocks, elastic kernels, of the widths those in whole heads). The ResNets'
# 7x7 stem runs 3/5/7; each transformer layer has one head group and one MLP width, plus the hidden width; GQA's
# repeated key/value heads stay fixed (a view writes the group count), so Llama-GQA keeps its heads.
EXPECTED = {"resnet_basic": (6, 2, 1, 0), "resnet_bottleneck": (11, 2, 1, 0), "mobilenetv2": (25, 5, 0, 0),
            "efficientnet": (22, 0, 0, 0), "convnext": (6, 2, 4, 0), "vit": (5, 1, 0, 2), "bert": (6, 1, 0, 2),
            "gpt2": (5, 2, 0, 2), "llama": (5, 2, 0, 2), "llama_gqa": (3, 2, 0, 0)}


def _close(actual, expected, relative):
    torch.testing.assert_close(actual, expected, rtol=0, atol=relative * max(1e-3, expected.abs().max().item()))


@pytest.fixture(scope="module", params=zoo_models.MODELS)
def zoo(request):
    torch.manual_seed(0)
    model = zoo_models.build(request.param).eval()
    x = zoo_models.example(request.param)
    return request.param, model, x, elasticize(model, x).eval()


def test_it_finds_what_each_model_can_shrink(zoo):
    name, _, _, net = zoo
    space = net.space
    heads = sum(w.unit > 1 for w in space.widths)
    assert (len(space.widths), len(space.depths), len(space.kernels), heads) == EXPECTED[name]


def test_the_largest_subnet_is_the_model_and_subnets_extract_exactly(zoo):
    # Re-ordering permutes float32 sums (1e-4 of the output scale is a wide margin, as for hand-written
    # models); the extracted graph runs the very same kernels on copies of the same slices.
    _, model, x, net = zoo
    with torch.no_grad():
        _close(net(x, net.space.max()), model(x), 1e-4)
        for arch in [net.space.max(), net.space.min(), *net.space.sample(3, n=3)]:
            _close(net.extract(arch).eval()(x), net(x, arch), 1e-6)


def test_counts_match_torch_and_subnets_export(zoo):
    import onnxruntime as ort

    _, _, x, net = zoo
    arch = net.space.min()
    static = net.extract(arch).eval()
    if x.is_floating_point():  # an image model: its smallest subnet runs at its smallest resolution
        x = torch.randn(2, x.shape[1], arch.resolution, arch.resolution)
    params, macs = hook_counts(static, x[:1])
    assert count_params(net.space, arch) == params
    assert count_macs(net.space, arch) == macs  # attention's products included
    with torch.no_grad():
        expected = static(x)
    _close(export_program(static, x).module()(x), expected, 1e-5)
    session = ort.InferenceSession(export_onnx_bytes(static, x, dynamic_batch=True))
    onnx_out = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    _close(onnx_out, expected, 1e-4)


def test_the_cli_explains_a_zoo_model(capsys):
    from elasticnas.cli import main

    assert main(["elasticize", "tests.supernet.zoo_models:build", "--arg", "name=gpt2", "--input-shape", "12",
                 "--input-dtype", "int64", "--explain"]) == 0
    printed = capsys.readouterr().out
    assert "4 heads of 8 channels" in printed and "token ids" in printed and "432 subnets" in printed
