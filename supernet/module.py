"""The one supernet protocol every family implements (Once-for-All's, without hidden state).

``space``, ``set_active(arch)``, ``forward(x, arch=None)``, ``active_state_dict(arch)`` and
``extract(arch)``. Elastic modules take their active setting as arguments, so no module keeps
an "active" state of its own; ``extract`` builds the static twin from the space's layer specs
and loads the active slices into it.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from elasticnas.supernet.arch import Arch
from elasticnas.supernet.static import build_static


def prefixed(prefix: str, state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {f"{prefix}.{name}": tensor for name, tensor in state.items()}


class ElasticBlock(nn.Module):
    """A block whose hidden channels may be re-ordered by importance before widths shrink."""

    def sort_channels(self, optimizer: torch.optim.Optimizer | None = None) -> Tensor | None:
        """Permute hidden channels, most important first, without changing the block's function;
        return the permutation (None when the block has nothing to sort)."""
        return None

    def residual_output_norm(self) -> nn.Module | None:
        """The norm whose output the block adds to its skip connection (None: the block has none)."""
        return None


class Supernet(nn.Module):
    """Base of every family's supernet module.

    ``input_weight`` names the weight that reads the image (its dim 1 is the input channels) and
    ``output_layer`` the classifier (its ``weight`` and ``bias`` rows are the classes), so that
    weights can move between supernets of other class or channel counts.
    """

    input_weight: ClassVar[str | None] = None
    output_layer: ClassVar[str | None] = None

    def __init__(self, space):
        super().__init__()
        self.space = space
        self.active_arch = space.max()

    def set_active(self, arch: Arch) -> None:
        self.active_arch = self.space.validate(arch)

    def resolve(self, arch: Arch | None) -> Arch:
        """``arch`` validated, or the active architecture when None."""
        if arch is None or arch is self.active_arch:
            return self.active_arch
        return self.space.validate(arch)

    def active_state_dict(self, arch: Arch) -> dict[str, Tensor]:
        """The active slices of every weight and statistic, named as in the static model."""
        raise NotImplementedError

    def no_weight_decay(self) -> set[str]:
        """Names of parameters that weight decay must skip besides biases and norms."""
        return set()

    def residual_output_norms(self) -> list[nn.Module]:
        """The norm ending each residual branch: with its scale at zero, the block starts as the identity."""
        return [norm for m in self.modules() if isinstance(m, ElasticBlock)
                and (norm := m.residual_output_norm()) is not None]

    @torch.no_grad()
    def extract(self, arch: Arch | None = None) -> nn.Sequential:
        """A standalone static model of ``arch`` whose outputs equal the supernet's for it."""
        arch = self.resolve(arch)
        model = build_static(self.space, arch)
        model.load_state_dict({k: v.detach() for k, v in self.active_state_dict(arch).items()})
        reference = next(self.parameters())
        return model.to(device=reference.device, dtype=reference.dtype).train(self.training)


class SpecDrivenSupernet(Supernet):
    """A supernet whose every layer is one module run by its spec from ``space.layers(arch)``.

    Subclasses name the module of each layer (:meth:`_modules_of`); each module implements
    ``run(x, spec)`` and ``spec_state(spec)`` (its active slices, named as in the static module).
    """

    def _modules_of(self, arch: Arch) -> list[nn.Module]:
        """The module running each of ``space.layers(arch)``, in the same order."""
        raise NotImplementedError

    def _layers(self, arch: Arch) -> list[tuple[nn.Module, object]]:
        return list(zip(self._modules_of(arch), self.space.layers(arch), strict=True))

    def forward(self, x: Tensor, arch: Arch | None = None) -> Tensor:
        """Run ``arch`` (default: the active architecture) on ``x``, already at its resolution."""
        for module, spec in self._layers(self.resolve(arch)):
            x = module.run(x, spec)
        return x

    def active_state_dict(self, arch: Arch) -> dict[str, Tensor]:
        state = {}
        for index, (module, spec) in enumerate(self._layers(arch)):
            state.update(prefixed(str(index), module.spec_state(spec)))
        return state
