"""Importing Once-for-All checkpoints, and starting a run from another run's supernet."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from elasticnas.cli import main
from elasticnas.core.errors import ConfigError
from elasticnas.data import DataConfig, load_data
from elasticnas.hardware import LatencyTable
from elasticnas.importing import import_checkpoint
from elasticnas.measure import table_folder
from elasticnas.parents import file_sha256
from elasticnas.runs import load_trained
from elasticnas.supernet import create_supernet
from elasticnas.supernet.foreign import convert_foreign_state, read_tensor_file
from elasticnas.supernet.transfer import inherit_weights
from tests.conftest import FAST_RUN

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "refdata" / "ofa_checkpoint"
needs_reference = pytest.mark.skipif(not (REFERENCE / "expected_logits.json").exists(),
                                     reason=f"the OFA reference checkpoint is not at {REFERENCE} (../shared/refdata)")
# OFA computed these logits in float32 with its own op order; ours differs in summation order only
# (conv vs matmul kernels, the 7->5->3 chain collapsed into one matrix). Logits are O(1-5) and pass
# through ~50 layers, so float32 reordering gives ~1e-6 here; 1e-4 is the bound, 50x that.
LOGIT_TOLERANCE = 1e-4


def _cases():
    if not (REFERENCE / "expected_logits.json").exists():
        return [pytest.param(None, marks=needs_reference)]
    cases = json.loads((REFERENCE / "expected_logits.json").read_text())["cases"]
    return [pytest.param(case, id=f"r{case['config']['r'][0]}-d{''.join(map(str, case['config']['d']))}")
            for case in cases]


def _older_names(state: dict) -> dict:
    """The same tensors as older OFA releases name them (mobile_inverted_conv, flatter nesting)."""
    renamed = {}
    for key, tensor in state.items():
        key = key.replace(".conv.", ".mobile_inverted_conv.", 1) if key.startswith("blocks.") else key
        renamed[key.replace(".bn.bn.", ".bn.").replace(".conv.conv.weight", ".conv.weight")] = tensor
    return renamed


@pytest.fixture(scope="module")
def ofa_supernet():
    net = create_supernet("ofa_mbv3_w10", num_classes=1000, in_channels=3)
    net.load_state_dict(convert_foreign_state("ofa", read_tensor_file(REFERENCE / "ofa_mbv3_w10_random.pth"), net))
    return net.eval()


@needs_reference
@pytest.mark.parametrize("case", _cases())
def test_imported_supernet_and_its_subnets_give_the_logits_ofa_computes(ofa_supernet, case):
    from safetensors.torch import load_file

    from elasticnas.supernet.families.mobilenetv3.arch import MobileNetV3Arch

    arch = MobileNetV3Arch.from_dict(case["config"])
    images = load_file(REFERENCE / "input.safetensors")["input"]
    images = F.interpolate(images, size=(arch.resolution,) * 2, mode="bilinear", align_corners=False)
    expected = torch.tensor(case["logits"])
    with torch.no_grad():
        from_supernet = ofa_supernet(images, arch)
        from_subnet = ofa_supernet.extract(arch).eval()(images)
    torch.testing.assert_close(from_supernet, expected, rtol=0, atol=LOGIT_TOLERANCE)
    torch.testing.assert_close(from_subnet, expected, rtol=0, atol=LOGIT_TOLERANCE)


@needs_reference
def test_older_ofa_key_names_give_the_same_supernet(ofa_supernet):
    state = torch.load(REFERENCE / "ofa_mbv3_w10_random.pth", weights_only=True)["state_dict"]
    older = _older_names(state)
    assert any(".mobile_inverted_conv." in k for k in older) and not any(".bn.bn." in k for k in older)
    converted = convert_foreign_state("ofa", older, ofa_supernet)
    for name, tensor in ofa_supernet.state_dict().items():
        assert torch.equal(converted[name], tensor), name


@needs_reference
def test_import_ofa_writes_a_run_folder_that_loads_like_a_trained_run(ofa_supernet, tmp_path, capsys):
    source = REFERENCE / "ofa_mbv3_w10_random.pth"
    out = tmp_path / "ofa"
    assert main(["import-ofa", str(source), "--supernet", "ofa_mbv3_w10", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "supernet.safetensors"]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["init"]["sha256"] == file_sha256(source) and config["init"]["format"] == "ofa"
    run = load_trained(out)
    for name, tensor in ofa_supernet.state_dict().items():
        assert torch.equal(run.supernet.state_dict()[name], tensor), name
    with pytest.raises(ConfigError, match="torchvision|data.root"):  # no data was configured for it
        run.eval_data("test")


def _write_foreign_files(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    files = {"random bytes": folder / "random.pth", "not a state dict": folder / "list.pth",
             "wrong tensors": folder / "wrong.pth", "executes code when unpickled": folder / "evil.pth"}
    files["random bytes"].write_bytes(os.urandom(4096))
    torch.save([1, 2, 3], files["not a state dict"])
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, files["wrong tensors"])

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {folder / 'pwned'}",))

    files["executes code when unpickled"].write_bytes(pickle.dumps({"state_dict": Evil()}))
    if (REFERENCE / "ofa_mbv3_w10_random.pth").exists():
        whole = (REFERENCE / "ofa_mbv3_w10_random.pth").read_bytes()
        files["truncated"] = folder / "truncated.pth"
        files["truncated"].write_bytes(whole[: len(whole) // 2])
        state = torch.load(REFERENCE / "ofa_mbv3_w10_random.pth", weights_only=True)["state_dict"]
        files["partial"] = folder / "partial.pth"
        torch.save({"state_dict": {k: v for k, v in state.items() if "blocks.7." not in k}}, files["partial"])
        files["mis-shaped"] = folder / "misshaped.pth"
        state["classifier.linear.weight"] = state["classifier.linear.weight"][:, :100]
        torch.save({"state_dict": state}, files["mis-shaped"])
    return files


def test_bad_checkpoints_give_one_line_exit_2_and_leave_no_folder(tmp_path, capsys):
    files = _write_foreign_files(tmp_path / "files")
    for what, path in files.items():
        out = tmp_path / "runs" / "imported"
        assert main(["import-ofa", str(path), "--supernet", "ofa_mbv3_w10", "--out", str(out)]) == 2, what
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and (str(path) in err or "tensor" in err), (what, err)
        assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == [], what
    assert not (tmp_path / "files" / "pwned").exists()
    if "partial" in files:
        main(["import-ofa", str(files["partial"]), "--supernet", "ofa_mbv3_w10", "--out", str(tmp_path / "x")])
        assert "blocks.6." in capsys.readouterr().err  # names the first missing tensor (our block 6 = OFA's 7)
        main(["import-ofa", str(files["mis-shaped"]), "--supernet", "ofa_mbv3_w10", "--out", str(tmp_path / "x")])
        assert "'classifier.linear.weight' has shape (1000, 100)" in capsys.readouterr().err


def test_import_refuses_a_supernet_of_another_family_and_an_existing_folder(tmp_path):
    net = create_supernet("tiny_resnet", num_classes=10, in_channels=1)
    with pytest.raises(ConfigError, match="'ofa' fills the 'mobilenetv3' family"):
        convert_foreign_state("ofa", {"x": torch.zeros(1)}, net)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an empty folder"):
        import_checkpoint(tmp_path / "none.pth", supernet="ofa_mbv3_w10", out=tmp_path / "taken")
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


# ----- transfer -----------------------------------------------------------------------------------
def test_one_channel_child_answers_like_the_parent_on_the_repeated_image():
    parent = create_supernet("tiny_mbv3", num_classes=10, in_channels=3).eval()
    child = create_supernet("tiny_mbv3", num_classes=4, in_channels=1).eval()
    notes = inherit_weights(child, parent.state_dict(), input_filters="sum")
    assert any("classifier: 4 class rows kept from the parent's 10" in n for n in notes)
    gray = torch.randn(2, 1, 24, 24)
    arch = child.space.middle()
    with torch.no_grad():
        expected = parent(gray.expand(-1, 3, -1, -1), arch)[:, :4]
        torch.testing.assert_close(child(gray, arch), expected, rtol=1e-5, atol=1e-5)
    inherit_weights(child, parent.state_dict(), input_filters="average")
    torch.testing.assert_close(child.stem.conv.weight, parent.stem.conv.weight.mean(1, keepdim=True))


def test_more_classes_keep_the_parent_rows_and_initialise_the_rest():
    parent = create_supernet("tiny_mbv3", num_classes=5, in_channels=1)
    child = create_supernet("tiny_mbv3", num_classes=8, in_channels=1)
    fresh = child.classifier.weight.detach().clone()
    inherit_weights(child, parent.state_dict())
    assert torch.equal(child.classifier.weight[:5], parent.classifier.weight)
    assert torch.equal(child.classifier.weight[5:], fresh[5:])
    other = create_supernet("tiny_mbv3", num_classes=8, in_channels=1)
    fresh = other.classifier.weight.detach().clone()
    notes = inherit_weights(other, parent.state_dict(), reset_classifier=True)
    assert torch.equal(other.classifier.weight, fresh) and "8 class rows initialised afresh" in notes[0]
    assert torch.equal(other.stem.conv.weight, parent.stem.conv.weight)


def test_transfer_refuses_other_widths_and_other_families():
    parent = create_supernet("tiny_mbv3", num_classes=10, in_channels=1, stem_channels=24)
    child = create_supernet("tiny_mbv3", num_classes=10, in_channels=1)
    with pytest.raises(ConfigError, match="'stem.conv.weight' has shape"):
        inherit_weights(child, parent.state_dict())
    with pytest.raises(ConfigError, match="has no tensor"):
        inherit_weights(child, create_supernet("tiny_resnet", num_classes=10, in_channels=1).state_dict())


def test_data_classes_keeps_and_renumbers_labels():
    splits = load_data(DataConfig(name="digits", classes=(7, 3)))
    assert splits.num_classes == 2
    full = load_data(DataConfig(name="digits"))
    assert len(splits.train) + len(splits.val) + len(splits.test) == sum(
        int((s.tensors[1] == c).sum()) for s in (full.train, full.val, full.test) for c in (7, 3))
    with pytest.raises(ConfigError, match="does not have"):
        load_data(DataConfig(name="digits", classes=(3, 11)))
    with pytest.raises(ConfigError, match="at least two distinct"):
        DataConfig(name="digits", classes=(3, 3))


@pytest.fixture(scope="module")
def digits_0_to_4(tmp_path_factory):
    folder = tmp_path_factory.mktemp("transfer") / "source"
    assert main(["train", "mnist_sandwich", "--out", str(folder), "--set", *FAST_RUN, "data.classes=[0,1,2,3,4]"]) == 0
    return folder


@pytest.mark.slow
def test_transfer_run_records_its_parent_freezes_and_runs_the_whole_pipeline(digits_0_to_4, tmp_path, capsys):
    child = tmp_path / "child"
    assert main(["train", "mnist_sandwich", "--out", str(child), "--init", str(digits_0_to_4), "--set", *FAST_RUN,
                 "data.classes=[5,6,7,8,9]", "init.freeze=[stem.*]", "init.freeze_epochs=1"]) == 0
    printed = capsys.readouterr().out
    assert "starting from" in printed and "classifier" not in printed  # 5 classes both: nothing adapted
    config = yaml.safe_load((child / "config.yaml").read_text())
    assert config["init"]["source"] == str(digits_0_to_4)
    assert config["init"]["sha256"] == file_sha256(digits_0_to_4 / "checkpoint.pt")
    parent, run = load_trained(digits_0_to_4), load_trained(child)
    assert torch.equal(run.supernet.stem.conv.weight, parent.supernet.stem.conv.weight)  # frozen
    assert not torch.equal(run.supernet.blocks[0].project.conv.weight, parent.supernet.blocks[0].project.conv.weight)
    LatencyTable.build(run.space, repeats=2, rounds=1, warmup=0, out=table_folder(child, "cpu", "torch"),
                       progress=False)
    assert main(["measure", str(child), "--n", "12"]) == 0
    assert main(["fit", str(child), "--trials", "3", "--folds", "3"]) == 0
    assert main(["search", str(child), "--predicted-evals", "400"]) == 0
    assert main(["export", str(child), "--pareto-index", "0", "--out", str(tmp_path / "exported")]) == 0
    report = json.loads((tmp_path / "exported" / "report.json").read_text())
    assert report["reloaded_equals_supernet_subnet"]


def test_transfer_from_an_imported_ofa_supernet_to_one_channel_digits(tmp_path, capsys):
    if not (REFERENCE / "ofa_mbv3_w10_random.pth").exists():
        pytest.skip(f"the OFA reference checkpoint is not at {REFERENCE}")
    imported = tmp_path / "ofa"
    assert main(["import-ofa", str(REFERENCE / "ofa_mbv3_w10_random.pth"), "--supernet", "ofa_mbv3_w10",
                 "--out", str(imported)]) == 0
    child = tmp_path / "digits"
    settings = [s for s in FAST_RUN if not s.startswith("supernet.")] + ["data.classes=[0,1]", "data.batch_size=128"]
    assert main(["train", "mnist_sandwich", "--out", str(child), "--init", str(imported), "--set", *settings,
                 "supernet.name=ofa_mbv3_w10", "supernet.overrides.resolutions=[32]", "sampler.options.num_random=1",
                 "init.input_filters=average"]) == 0
    printed = capsys.readouterr().out
    assert "3 channel(s) -> 1 by average" in printed and "2 class rows kept from the parent's 1000" in printed
    assert load_trained(child).space.resolutions == (32,)
