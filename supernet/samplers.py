"""Sampling strategies: which subnets each training step trains, and how.

Every strategy is registered by name, takes its knobs as a frozen options dataclass, and
draws from a generator seeded by ``(seed, step)``: the subnets of a step depend on nothing
else, so every process of a distributed run agrees and a resumed run replays them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from elasticnas.core.config import parse_config, require_range
from elasticnas.core.errors import ConfigError
from elasticnas.core.registry import Registry
from elasticnas.supernet.arch import Arch


@dataclass(frozen=True)
class SubnetTask:
    """One forward/backward of a step."""

    arch: Arch
    distill: bool = False  # learn from the step's soft targets instead of the labels
    teacher: bool = False  # this subnet's detached predictions become the step's soft targets
    with_labels: bool = False  # when distilling, also learn from the labels (loss = CE + KD)
    weight: float = 1.0  # multiplies the loss (a per-subnet learning-rate multiplier)


@dataclass
class StepContext:
    """What a strategy may look at when choosing the subnets of step ``step``."""

    step: int
    total_steps: int
    # mean loss of each architecture on the current mini-batch, without gradients
    score: Callable[[Sequence[Arch]], np.ndarray] | None = None


STRATEGIES: Registry[type] = Registry("sampling strategy")


def register_strategy(name: str):
    def decorate(cls):
        cls.name = name
        return STRATEGIES.register(name, cls)

    return decorate


def list_strategies() -> list[str]:
    return STRATEGIES.names()


def create_strategy(name: str, space, options: dict[str, Any] | None = None, *, seed: int = 0):
    """Strategy ``name`` over ``space``; ``options`` are checked against its options dataclass."""
    cls = STRATEGIES.get(name)
    return cls(space, parse_config(cls.Options, options or {}, f"sampler.options ({name})"), seed=seed)


class Strategy:
    """Base of the strategies: seeded per-step draws, and the hooks the trainer calls.

    A strategy must implement :meth:`sample`. The optional hooks have defaults here:
    :meth:`phase` names the training phase of a step; entering a phase in
    :meth:`teacher_phases` takes a frozen, BN-recalibrated snapshot of the max subnet as the
    distillation teacher; entering one in :meth:`reorder_phases` re-orders channels by
    importance; :attr:`distillation` is the loss the distilling subnets use.
    """

    name = "base"

    @dataclass(frozen=True)
    class Options:
        pass

    def __init__(self, space, options, *, seed: int = 0):
        self.space, self.options, self.seed = space, options, seed

    def rng(self, step: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, step])

    def sample(self, context: StepContext) -> list[SubnetTask]:
        raise NotImplementedError

    def phase(self, step: int, total_steps: int) -> str:
        """Name of the training phase at ``step`` (strategies with phases override it)."""
        return "main"

    def teacher_phases(self) -> tuple[str, ...]:
        """Phases that distill from a frozen snapshot of the max subnet (taken once, on entering the first)."""
        return ()

    def reorder_phases(self) -> tuple[str, ...]:
        """Phases on whose entry channels are re-ordered by importance."""
        return ()

    @property
    def distillation(self) -> str:
        """Distillation loss of the subnets that learn from soft targets: 'kl' or 'alpha'."""
        return "kl"

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "options": dataclasses.asdict(self.options)}

    def matches(self, saved: dict[str, Any]) -> bool:
        """Whether a checkpoint's :meth:`state_dict` is this strategy's. An option added after
        the checkpoint was written counts at its default, which keeps the earlier behaviour:
        runs saved before it existed still resume."""
        defaults = {f.name: f.default for f in dataclasses.fields(self.options) if f.default is not dataclasses.MISSING}
        return {**saved, "options": {**defaults, **saved["options"]}} == self.state_dict()


def _sandwich(space, rng, num_random: int, weight: float = 1.0, with_labels: bool = False) -> list[SubnetTask]:
    students = [space.min()] + [space.sample(rng) for _ in range(num_random)]
    return [SubnetTask(space.max(), teacher=True)] + [
        SubnetTask(arch, distill=True, with_labels=with_labels, weight=weight) for arch in students]


@register_strategy("uniform")
class Uniform(Strategy):
    """Single-path uniform sampling (Guo et al. 2020; Once-for-All's elastic phases without a teacher)."""

    @dataclass(frozen=True)
    class Options:
        num_subnets: int = 1  # random subnets per step, each from the labels
        # also the min subnet every step, from the labels: the sandwich rule's lower bound without
        # its teacher, for the smallest subnets, which uniform draws rarely reach (docs/benchmarks.md: seeds)
        with_smallest: bool = False
        # also the max subnet every step, from the labels: with ``with_smallest``, the sandwich rule's
        # bounds without its teacher, for the largest subnets, which uniform draws also rarely reach
        with_largest: bool = False

    def sample(self, context: StepContext) -> list[SubnetTask]:
        rng = self.rng(context.step)
        bounds = [self.space.max()] if self.options.with_largest else []
        bounds += [self.space.min()] if self.options.with_smallest else []
        drawn = [self.space.sample(rng) for _ in range(self.options.num_subnets)]
        return [SubnetTask(arch) for arch in bounds + drawn]


@register_strategy("sandwich")
class Sandwich(Strategy):
    """Sandwich rule with in-place distillation (BigNAS, Yu et al. 2020).

    The max subnet learns from labels; the min and ``num_random`` random subnets learn from
    its detached soft predictions (KL, or AlphaNet's adaptive alpha-divergence). With
    ``teacher: frozen`` they all learn from the max subnet as it was when training began.
    """

    @dataclass(frozen=True)
    class Options:
        num_random: int = 2
        distill: Literal["kl", "alpha"] = "kl"
        # "frozen": every subnet, the max too, distills from a frozen snapshot of the max subnet taken when
        # training starts (with its labels for the max): a pretrained network (an elasticized model, a
        # parent run) teaches its own subnets, InstaTune/BootstrapNAS-style
        teacher: Literal["inplace", "frozen"] = "inplace"
        # the min and random subnets learn from the labels too (loss = CE + KD), as Once-for-All's
        # subnets do; on a language model this halved, but did not cure, the collapse that
        # distilling from an untrained teacher causes (docs/language_models.md: training once)
        student_labels: bool = False

    @property
    def distillation(self) -> str:
        return self.options.distill

    def teacher_phases(self) -> tuple[str, ...]:
        return ("main",) if self.options.teacher == "frozen" else ()

    def sample(self, context: StepContext) -> list[SubnetTask]:
        tasks = _sandwich(self.space, self.rng(context.step), self.options.num_random,
                          with_labels=self.options.student_labels)
        if self.options.teacher == "frozen":
            tasks[0] = dataclasses.replace(tasks[0], teacher=False, distill=True, with_labels=True)
        return tasks


@register_strategy("progressive_shrinking")
class ProgressiveShrinking(Strategy):
    """Once-for-All's progressive shrinking (Cai et al. 2020), all phases from one config.

    Phases in order: the full network alone; then one phase per dimension of the family's
    ``space.shrink_order`` (MobileNetV3: kernel size, depth, expand ratio; ResNet: depth,
    expand ratio, width), each making one more dimension elastic, the resolution elastic
    throughout. Channels are re-ordered by importance on entering the phase of a dimension
    in ``space.reorder_dimensions``. From the second phase on, subnets learn from the labels
    and distill from a frozen copy of the network trained in the first phase (its batch norm
    recalibrated).
    """

    @dataclass(frozen=True)
    class Options:
        # of all steps, per phase (the full network first); null: equal shares
        phase_fractions: tuple[float, ...] | None = None
        subnets_per_step: int = 2

    def __init__(self, space, options, *, seed: int = 0):
        super().__init__(space, options, seed=seed)
        self.phases = ("full", *space.shrink_order)
        fractions = options.phase_fractions
        if fractions is not None and (len(fractions) != len(self.phases) or min(fractions) < 0 or sum(fractions) <= 0):
            raise ConfigError(f"sampler.options.phase_fractions needs {len(self.phases)} non-negative shares, one "
                              f"per phase {list(self.phases)}, but got {list(fractions)}")

    def teacher_phases(self) -> tuple[str, ...]:
        return self.phases[1:]

    def reorder_phases(self) -> tuple[str, ...]:
        return tuple(p for p in self.phases[1:] if p in self.space.reorder_dimensions)

    def phase(self, step: int, total_steps: int) -> str:
        shares = self.options.phase_fractions or (1.0,) * len(self.phases)
        fractions = np.cumsum(shares) / sum(shares)
        index = int(np.searchsorted(fractions, (step + 0.5) / max(total_steps, 1)))
        return self.phases[min(index, len(self.phases) - 1)]

    def sample(self, context: StepContext) -> list[SubnetTask]:
        phase = self.phase(context.step, context.total_steps)
        rng = self.rng(context.step)
        n = 1 if phase == "full" else self.options.subnets_per_step
        elastic = ("resolution", *self.phases[1 : self.phases.index(phase) + 1])
        return [SubnetTask(self.space.sample(rng, dimensions=elastic), distill=phase != "full", with_labels=True)
                for _ in range(n)]


class _Bucketed(Strategy):
    """Shared by strategies that reason about complexity: a seeded pool split into MACs buckets."""

    def __init__(self, space, options, *, seed: int = 0):
        from elasticnas.hardware.counting import count_all  # hardware builds on supernet, not the reverse

        super().__init__(space, options, seed=seed)
        pool = list(dict.fromkeys(space.sample(np.random.default_rng([seed, 1 << 30]), n=options.pool_size)))
        macs = count_all(space, pool)["macs"]
        order = np.argsort(macs, kind="stable")
        self.buckets = [[pool[i] for i in chunk] for chunk in np.array_split(order, options.buckets) if len(chunk)]


@register_strategy("complexity_aware")
class ComplexityAware(_Bucketed):
    """ElasticViT's complexity-aware sampling (Tang et al. 2023).

    Subnets of consecutive steps come from neighbouring MACs buckets, walking up and down
    the whole range, so consecutive gradients come from similar-sized subnets; the max
    subnet teaches each step by in-place distillation.
    """

    @dataclass(frozen=True)
    class Options:
        buckets: int = 8
        pool_size: int = 4000  # subnets drawn once to define the buckets
        num_subnets: int = 2  # subnets from the current bucket per step

    def bucket(self, step: int) -> int:
        period = 2 * (len(self.buckets) - 1) or 1
        position = step % period
        return position if position < len(self.buckets) else period - position

    def sample(self, context: StepContext) -> list[SubnetTask]:
        rng = self.rng(context.step)
        bucket = self.buckets[self.bucket(context.step)]
        picks = rng.integers(len(bucket), size=self.options.num_subnets)
        return [SubnetTask(self.space.max(), teacher=True)] + [SubnetTask(bucket[i], distill=True) for i in picks]


@register_strategy("performance_aware")
class PerformanceAware(_Bucketed):
    """AttentiveNAS's best-up / worst-up sampling (Wang et al. 2021).

    Each step picks a MACs target (a random bucket), draws ``candidates`` subnets of about
    that size, scores them by loss on the current mini-batch (no gradients, no dropout), and trains
    the best (lowest loss) or the worst, alongside the sandwich's max and min.
    """

    @dataclass(frozen=True)
    class Options:
        buckets: int = 8
        pool_size: int = 4000
        candidates: int = 3
        mode: Literal["best", "worst"] = "best"

    def sample(self, context: StepContext) -> list[SubnetTask]:
        rng = self.rng(context.step)
        bucket = self.buckets[int(rng.integers(len(self.buckets)))]
        candidates = [bucket[i] for i in rng.integers(len(bucket), size=self.options.candidates)]
        if context.score is not None and len(candidates) > 1:
            losses = context.score(candidates)
            chosen = candidates[int(np.argmin(losses) if self.options.mode == "best" else np.argmax(losses))]
        else:
            chosen = candidates[0]
        return [SubnetTask(self.space.max(), teacher=True), SubnetTask(self.space.min(), distill=True),
                SubnetTask(chosen, distill=True)]


@register_strategy("delayed_shrinking")
class DelayedShrinking(Strategy):
    """DepS, delayed epsilon-shrinking (Sukthanker et al. 2024).

    Only the full network trains during the first ``delay_fraction`` of the steps; then
    the sandwich rule with in-place distillation, the smaller subnets' loss weight (their
    learning-rate multiplier) ramping linearly from 0 to ``student_weight`` over ``ramp_fraction``
    of the steps.
    """

    @dataclass(frozen=True)
    class Options:
        delay_fraction: float = 0.5
        ramp_fraction: float = 0.2
        num_random: int = 2
        student_labels: bool = False  # the smaller subnets learn from the labels too (loss = CE + KD)
        # sort the hidden channels (heads, MLP units) by importance as shrinking begins, so that
        # every smaller subnet starts from the full network's most important ones (Minitron)
        reorder: bool = False
        # the smaller subnets' loss weight once ramped in, the largest's being 1: below 1, the
        # largest's own gradient counts for more in the weights all of them share
        student_weight: float = 1.0

    def __init__(self, space, options, *, seed: int = 0):
        super().__init__(space, options, seed=seed)
        require_range("sampler.options.student_weight", options.student_weight, above=0.0, high=1.0)

    def reorder_phases(self) -> tuple[str, ...]:
        return ("shrinking",) if self.options.reorder and self.space.reorder_dimensions else ()

    def phase(self, step: int, total_steps: int) -> str:
        return "full" if step < self.options.delay_fraction * total_steps else "shrinking"

    def sample(self, context: StepContext) -> list[SubnetTask]:
        if self.phase(context.step, context.total_steps) == "full":
            return [SubnetTask(self.space.max())]
        start = self.options.delay_fraction * context.total_steps
        ramp = max(self.options.ramp_fraction * context.total_steps, 1.0)
        weight = self.options.student_weight * float(min(1.0, (context.step - start + 1) / ramp))
        return _sandwich(self.space, self.rng(context.step), self.options.num_random, weight,
                         with_labels=self.options.student_labels)
