"""Slice tables: one weights file, the best nested slice within a latency and a memory budget at run time."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save as save_safetensors

from elasticnas.core.checksums import sha256_bytes
from elasticnas.core.errors import ConfigError
from elasticnas.core.run_layout import SLICES_JSON, WEIGHTS
from elasticnas.hardware import count_all
from elasticnas.slices import load_slice, spread_along
from tests.conftest import make_supernet


def _table(tmp_path, net, archs, latencies, bits):
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    weights = save_safetensors(state)
    (tmp_path / WEIGHTS).write_bytes(weights)
    memory = count_all(net.space, archs)["memory_bytes"]
    rows = [{"arch": a.to_dict(), "measured_latency_ms": ms, "predicted_latency_ms": ms, "memory_bytes": int(m),
             "val_top1": 50.0, "val_bits_per_byte": b}
            for a, ms, m, b in zip(archs, latencies, memory, bits, strict=True)]
    (tmp_path / SLICES_JSON).write_text(json.dumps({"space": net.space.to_config(), "weights_sha256":
                                                    sha256_bytes(weights), "slices": rows}))
    return memory


def test_the_best_slice_within_the_budgets_is_the_supernets_own_subnet(tmp_path):
    net = make_supernet("tiny_gpt", num_classes=256).eval()
    small, large = net.space.min(), net.space.max()
    memory = _table(tmp_path, net, [small, large], [1.0, 3.0], [4.0, 3.0])
    tokens = torch.randint(0, 256, (2, 20), generator=torch.Generator().manual_seed(0))
    chosen = load_slice(tmp_path, budget_ms=2.0)
    assert chosen.slice["measured_latency_ms"] == 1.0
    torch.testing.assert_close(chosen(tokens), net(tokens, small), rtol=0, atol=0)
    assert load_slice(tmp_path).slice["val_bits_per_byte"] == 3.0  # no budget: the fewest bits per byte
    assert load_slice(tmp_path, memory_mb=memory[0] / 2**20).slice["measured_latency_ms"] == 1.0
    with pytest.raises(ConfigError, match="fastest measured 1.000 ms"):
        load_slice(tmp_path, budget_ms=0.5)


def test_a_weights_file_that_is_not_the_tables_is_refused(tmp_path):
    net = make_supernet("tiny_gpt", num_classes=256)
    _table(tmp_path, net, [net.space.min()], [1.0], [4.0])
    (tmp_path / WEIGHTS).write_bytes((tmp_path / WEIGHTS).read_bytes()[:-1] + b"\0")
    with pytest.raises(ConfigError, match="SHA-256 differs"):
        load_slice(tmp_path)


def test_a_table_without_its_metric_is_refused_naming_the_file(tmp_path):
    net = make_supernet("tiny_gpt", num_classes=256)
    _table(tmp_path, net, [net.space.min()], [1.0], [4.0])
    table = json.loads((tmp_path / SLICES_JSON).read_text())
    del table["slices"][0]["val_bits_per_byte"]  # a language model's slices are chosen on bits per byte
    (tmp_path / SLICES_JSON).write_text(json.dumps(table))
    with pytest.raises(ConfigError, match=f"{SLICES_JSON} is not a valid slice table: .*val_bits_per_byte"):
        load_slice(tmp_path)


def test_sizes_are_spread_along_the_front_in_latency_order():
    import pandas as pd

    front = pd.DataFrame({"latency_ms": [5.0, 1.0, 3.0, 2.0, 4.0]})
    assert spread_along(front, 3) == [1, 2, 0]  # fastest, middle, slowest
    assert sorted(spread_along(front, 10)) == [0, 1, 2, 3, 4]


def test_an_image_runs_slices_carry_their_recalibrated_batch_norm(run_copy, tmp_path):
    """Slices of a family with batch norm: each slice's own recalibrated statistics travel in the weights
    file, so the loaded slice computes what the calibrated subnet computed when it was measured."""
    import pandas as pd

    from elasticnas.core.run_layout import FRONT, SEARCH
    from elasticnas.runs import load_trained
    from elasticnas.slices import write_slices
    from elasticnas.supernet.evaluation import calibrated_subnet

    run = load_trained(run_copy)
    space = run.space
    archs = [space.min(), space.middle(), space.max()]
    (run_copy / SEARCH / "manual").mkdir(parents=True)
    pd.DataFrame({"arch": [a.to_json() for a in archs], "latency_ms": [1.0, 2.0, 3.0]}).to_csv(
        run_copy / SEARCH / "manual" / FRONT, index=False)
    table = write_slices(run_copy, tmp_path / "slices", sizes=3, progress=False)
    assert len(table) == 3 and (table["val_top1"] > 0).all() and "val_bits_per_byte" not in table
    data = run.eval_data("val")
    fastest = table["measured_latency_ms"].min()
    model = load_slice(tmp_path / "slices", budget_ms=fastest)
    arch = space.canonical(model.slice["arch"])
    expected = calibrated_subnet(run.supernet, arch, data)
    _, images = data.at(arch.resolution, torch.device("cpu"))
    with torch.no_grad():
        torch.testing.assert_close(model(images[:16]), expected(images[:16]), rtol=0, atol=0)
        uncalibrated = run.supernet.extract(arch).eval()(images[:16])
    assert not torch.allclose(uncalibrated, expected(images[:16]))  # the statistics mattered


def test_a_missing_table_and_an_occupied_folder_are_refused_before_any_work(run_copy, tmp_path):
    from elasticnas.slices import write_slices

    with pytest.raises(ConfigError, match="no slices.json in .*elasticnas slices RUN --out"):
        load_slice(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="not a slice table"):  # the run folder itself: refused, nothing measured
        write_slices(run_copy, run_copy, progress=False)
