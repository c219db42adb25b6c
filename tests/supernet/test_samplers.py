"""Conformance suite: every registered sampling strategy must pass these."""

from __future__ import annotations

import numpy as np
import pytest

from elasticnas.supernet import ConfigError, UnknownNameError, create_space, list_supernets
from elasticnas.supernet.samplers import StepContext, create_strategy, list_strategies

SPACE = create_space("tiny_mbv3", num_classes=10, in_channels=1)
EVERY_SPACE = pytest.mark.parametrize("supernet", list_supernets())


def _context(step, total=100):
    return StepContext(step, total, score=lambda archs: np.arange(len(archs), dtype=float))


@EVERY_SPACE
@pytest.mark.parametrize("name", list_strategies())
def test_strategy_yields_valid_tasks_deterministically(name, supernet):
    space = create_space(supernet, num_classes=10)
    strategy = create_strategy(name, space, {"pool_size": 500} if "aware" in name else None, seed=3)
    again = create_strategy(name, space, {"pool_size": 500} if "aware" in name else None, seed=3)
    for step in (0, 1, 37, 99):
        tasks = strategy.sample(_context(step))
        assert tasks, "a step must train at least one subnet"
        for task in tasks:
            assert space.canonical(task.arch) == space.validate(task.arch)
            assert 0.0 <= task.weight <= 1.0
        assert tasks == again.sample(_context(step))
    assert strategy.state_dict() == again.state_dict()


@EVERY_SPACE
@pytest.mark.parametrize("name", list_strategies())
def test_distilling_tasks_come_after_a_teacher_or_use_a_snapshot(name, supernet):
    space = create_space(supernet, num_classes=10)
    strategy = create_strategy(name, space, {"pool_size": 500} if "aware" in name else None, seed=0)
    for step in range(0, 100, 7):
        tasks = strategy.sample(_context(step))
        uses_snapshot = name == "progressive_shrinking" and strategy.phase(step, 100) in strategy.teacher_phases()
        seen_teacher = False
        for task in tasks:
            if task.distill:
                assert seen_teacher or uses_snapshot, (name, step)
            seen_teacher |= task.teacher


def test_sandwich_trains_max_min_and_random():
    tasks = create_strategy("sandwich", SPACE, {"num_random": 3}).sample(_context(5))
    assert [t.arch for t in tasks[:2]] == [SPACE.max(), SPACE.min()]
    assert len(tasks) == 5 and tasks[0].teacher and all(t.distill for t in tasks[1:])


def test_sandwich_students_can_learn_from_the_labels_beside_the_teacher():
    plain = create_strategy("sandwich", SPACE, {"num_random": 2}, seed=4).sample(_context(7))
    tasks = create_strategy("sandwich", SPACE, {"num_random": 2, "student_labels": True}, seed=4).sample(_context(7))
    assert [t.arch for t in tasks] == [t.arch for t in plain]  # the same draws
    assert tasks[0].teacher and not tasks[0].with_labels  # the teacher learns from the labels alone, as before
    assert all(t.distill and t.with_labels for t in tasks[1:]) and not any(t.with_labels for t in plain)


def test_uniform_with_the_smallest_adds_the_min_subnet_to_the_same_random_draws():
    plain = create_strategy("uniform", SPACE, {"num_subnets": 2}, seed=4).sample(_context(7))
    tasks = create_strategy("uniform", SPACE, {"num_subnets": 2, "with_smallest": True}, seed=4).sample(_context(7))
    assert [t.arch for t in tasks] == [SPACE.min(), *(t.arch for t in plain)]
    assert not any(t.teacher or t.distill for t in tasks)  # no teacher: every subnet learns from the labels


def test_uniform_with_both_bounds_is_the_sandwich_rule_without_its_teacher():
    plain = create_strategy("uniform", SPACE, {"num_subnets": 1}, seed=4).sample(_context(7))
    options = {"num_subnets": 1, "with_smallest": True, "with_largest": True}
    tasks = create_strategy("uniform", SPACE, options, seed=4).sample(_context(7))
    assert [t.arch for t in tasks] == [SPACE.max(), SPACE.min(), plain[0].arch]
    assert not any(t.teacher or t.distill for t in tasks)


def test_progressive_shrinking_phases_open_dimensions_in_order():
    strategy = create_strategy("progressive_shrinking", SPACE, seed=0)
    phases = [strategy.phase(step, 100) for step in range(100)]
    assert phases[0] == "full" and phases[30] == "kernel" and phases[60] == "depth" and phases[99] == "expand"
    largest = SPACE.max()
    kernel = strategy.sample(_context(30))
    assert all(t.arch.depths == largest.depths and t.arch.expand_ratios == largest.expand_ratios for t in kernel)
    assert any(t.arch.kernel_sizes != largest.kernel_sizes for t in kernel)
    depth_phase = [strategy.sample(_context(s)) for s in range(50, 75)]
    assert all(t.arch.expand_ratios[0] == max(SPACE.expand_choices) for tasks in depth_phase for t in tasks)
    assert any(t.arch.depths != largest.depths for tasks in depth_phase for t in tasks)
    first = strategy.sample(_context(0))
    assert len(first) == 1 and not first[0].distill


def test_complexity_aware_walks_neighbouring_buckets():
    strategy = create_strategy("complexity_aware", SPACE, {"buckets": 4, "pool_size": 400})
    assert [strategy.bucket(s) for s in range(8)] == [0, 1, 2, 3, 2, 1, 0, 1]
    from elasticnas.hardware import count_macs

    means = [np.mean([count_macs(SPACE, a) for a in bucket]) for bucket in strategy.buckets]
    assert means == sorted(means)


@pytest.mark.parametrize(("mode", "pick"), [("best", 0), ("worst", -1)])
def test_performance_aware_trains_the_best_or_worst_candidate(mode, pick):
    strategy = create_strategy("performance_aware", SPACE, {"candidates": 4, "mode": mode, "pool_size": 400})
    seen = {}

    def score(archs):
        seen["candidates"] = list(archs)
        return np.array([3.0, 1.0, 2.0, 4.0])

    tasks = strategy.sample(StepContext(3, 100, score=score))
    expected = seen["candidates"][int(np.argsort([3.0, 1.0, 2.0, 4.0])[pick])]
    assert tasks[-1].arch == expected


def test_delayed_shrinking_trains_the_full_net_then_ramps_the_rest_in():
    strategy = create_strategy("delayed_shrinking", SPACE, {"delay_fraction": 0.5, "ramp_fraction": 0.2})
    assert [t.arch for t in strategy.sample(_context(10))] == [SPACE.max()]
    weights = [strategy.sample(_context(s))[1].weight for s in (50, 55, 69, 90)]
    assert weights[0] == pytest.approx(1 / 20) and weights[1] < weights[2] <= 1.0 and weights[3] == 1.0


def test_delayed_shrinking_can_reorder_as_shrinking_begins_and_give_students_the_labels():
    plain = create_strategy("delayed_shrinking", SPACE, {"delay_fraction": 0.5})
    assert plain.reorder_phases() == () and not any(t.with_labels for t in plain.sample(_context(80)))
    options = {"delay_fraction": 0.5, "reorder": True, "student_labels": True}
    strategy = create_strategy("delayed_shrinking", SPACE, options)
    assert strategy.reorder_phases() == ("shrinking",) and strategy.phase(80, 100) == "shrinking"
    tasks = strategy.sample(_context(80))
    assert tasks[0].teacher and all(t.distill and t.with_labels for t in tasks[1:])
    lighter = create_strategy("delayed_shrinking", SPACE, {**options, "student_weight": 0.5}).sample(_context(80))
    assert [t.weight for t in tasks] == [1.0] * len(tasks)  # step 80: past the ramp
    assert [t.weight for t in lighter] == [1.0] + [0.5] * (len(tasks) - 1)
    with pytest.raises(ConfigError, match="student_weight"):
        create_strategy("delayed_shrinking", SPACE, {"student_weight": 0.0})


def test_unknown_strategy_and_options_are_rejected():
    with pytest.raises(UnknownNameError, match="sandwich"):
        create_strategy("nope", SPACE)
    with pytest.raises(ConfigError, match="num_random"):
        create_strategy("sandwich", SPACE, {"num_randoms": 2})
    with pytest.raises(ConfigError, match="kl"):
        create_strategy("sandwich", SPACE, {"distill": "mse"})


def test_sandwich_with_a_frozen_teacher_distills_every_subnet_from_the_snapshot():
    strategy = create_strategy("sandwich", SPACE, {"teacher": "frozen"}, seed=0)
    tasks = strategy.sample(_context(3))
    assert strategy.teacher_phases() == ("main",)  # the snapshot is taken as training begins
    assert not any(t.teacher for t in tasks) and all(t.distill for t in tasks)
    assert tasks[0].arch == SPACE.max() and tasks[0].with_labels and not any(t.with_labels for t in tasks[1:])
    inplace = create_strategy("sandwich", SPACE, seed=0)
    assert inplace.teacher_phases() == () and inplace.sample(_context(3))[0].teacher
    assert inplace.matches({**inplace.state_dict(), "options": {"num_random": 2, "distill": "kl"}})  # old runs
