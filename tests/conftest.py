from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from elasticnas.supernet import create_space, create_supernet, list_supernets


def image_presets(pattern: str = "*") -> list[str]:
    """Registered presets whose subnets read images (the pipeline's data, training and int8 paths
    are image-only so far; the text families' conformance runs through the seam with the rest)."""
    return [n for n in list_supernets(pattern) if create_space(n, num_classes=10).modality == "image"]


# The OFA and AutoFormer presets at full size are slow on 2 CPU cores; conformance tests run them at
# their smallest resolutions, which exercise exactly the same code paths. The GPT-2 and SmolLM presets
# run with short contexts and 2-3 of their layers: every layer is the same code, and their exact
# full sizes are tested on their own (tests/supernet/test_decoder_family.py).
FAST_RESOLUTIONS = {"ofa_mbv3_w10": (128, 132), "ofa_mbv3_w12": (128, 132), "ofa_resnet50": (128, 132),
                    "autoformer_tiny": (96, 112), "autoformer_small": (96, 112)}
FAST_OVERRIDES = {"gpt2_small": dict(resolutions=(16, 24), depth_choices=(2, 3)),
                  "smollm_135m": dict(resolutions=(16, 24), depth_choices=(2, 3))}


def make_supernet(name: str, num_classes: int = 10, seed: int = 0, **overrides) -> nn.Module:
    """A supernet whose every weight, transform and BN statistic is random, so that any
    slicing or copying mistake changes its outputs."""
    overrides = {**FAST_OVERRIDES.get(name, {}), **overrides}
    overrides.setdefault("resolutions", FAST_RESOLUTIONS.get(name))
    if overrides["resolutions"] is None:
        del overrides["resolutions"]
    net = create_supernet(name, num_classes=num_classes, **overrides)
    randomise_(net, seed)
    return net


@torch.no_grad()
def randomise_(net: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for name, tensor in [*net.named_parameters(), *net.named_buffers()]:
        if not tensor.is_floating_point():  # counters, token ids, boolean masks
            continue
        noise = torch.randn(tensor.shape, generator=gen)
        if "running_var" in name:
            tensor.copy_(0.5 + noise.abs())
        elif "transforms" in name:
            tensor.add_(0.1 * noise)
        elif name.endswith("weight") and tensor.dim() == 1:  # batch-norm scale
            tensor.copy_(1.0 + 0.2 * noise)
        else:
            tensor.copy_(noise * (1.0 / max(1, tensor[0].numel()) ** 0.5))


@pytest.fixture(params=list_supernets())
def supernet_name(request) -> str:
    return request.param


def hook_counts(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(params, MACs) of a static model as torch's own FLOP counter sees it: the independent check.

    ``FlopCounterMode`` counts every convolution and matrix product the forward pass dispatches
    (linear layers on token sequences and attention's two products included), two FLOPs per MAC;
    norms, activations and pooling count nothing, as in the analytic convention. torch registers
    its attention formula for the GPU kernels only; the CPU kernel is given the same formula here.
    """
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    cpu_attention = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: attention_flops}
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=cpu_attention) as counter:
        model.eval()(x)
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2


FAST_RUN = ["data.name=digits", "data.batch_size=256", "train.bn_calibration_images=256",
            "train.bn_calibration_batch_size=128", "train.epochs=1", "supernet.overrides.resolutions=[20,24]"]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A finished one-epoch run on digits with a cheap CPU latency table in place (read-only: copy to modify)."""
    from elasticnas.experiment import load_experiment, train_experiment
    from elasticnas.hardware import LatencyTable
    from elasticnas.measure import table_folder

    folder = tmp_path_factory.mktemp("runs") / "digits"
    trainer, _ = train_experiment(load_experiment("mnist_sandwich", FAST_RUN), folder, progress=False)
    LatencyTable.build(trainer.space, repeats=2, rounds=1, warmup=0, out=table_folder(folder, "cpu", "torch"),
                       progress=False)
    return folder


@pytest.fixture
def run_copy(trained_run, tmp_path):
    import shutil

    return Path(shutil.copytree(trained_run, tmp_path / "run"))
