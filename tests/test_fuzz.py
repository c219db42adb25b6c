"""Property-based fuzzing of every file kind the project reads, and of the command line.

Every reader, given a spoiled file, returns or refuses in one line (tests/fuzzing.py); every
command exits 0, or exits 2 with exactly one line on stderr and no new file; nothing hangs.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.pipeline import make_pipeline

from elasticnas.cli import main
from elasticnas.core.errors import ConfigError
from elasticnas.export import export_subnet, load_subnet
from elasticnas.hardware import LatencyTable
from elasticnas.measure import latency_table_for, measured_archs, read_evaluations, table_folder
from elasticnas.pipeline import choose_arch
from elasticnas.predictors import ArchEncoder, RidgePredictor, load_predictor, save_predictor
from elasticnas.runs import load_trained, run_config, run_space
from elasticnas.search import Objective, cost_objective, table_latency_objective
from elasticnas.search.problem import Archive
from tests.fuzzing import JUNK, examples, files_under, outcome_of, spoiled, tally, time_limit

SEARCH, EXPORT = "search/s", "exports/e"


@pytest.fixture(scope="module")
def fuzz_run(trained_run, tmp_path_factory):
    """A run holding one file of every kind: predictor, evaluations, search results, an export."""
    run = Path(shutil.copytree(trained_run, tmp_path_factory.mktemp("fuzz") / "run"))
    space = run_space(run)
    archs = space.sample(np.random.default_rng(0), n=24)
    macs = np.asarray(cost_objective(space, "macs").fn(archs), dtype=float)
    model = make_pipeline(ArchEncoder(space, "ordinal"), RidgePredictor()).fit(archs, 90 + macs / macs.max())
    save_predictor(model, run / "predictors" / "accuracy.skops", space=space, target="val_top1")
    rows = [{"arch": a.to_json(), "resolution": a.resolution, "macs": m, "params": 1, "size_bytes": 4,
             "peak_activation_bytes": 8, "table_latency_ms": 1.0, "val_top1": 90.0, "val_loss": 0.3,
             "val_images": 100, "eval_seconds": 0.1} for a, m in zip(archs, macs, strict=True)]
    pd.DataFrame(rows).to_csv(run / "evaluations.csv", index=False)
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        # a budget every subnet meets by the table, however slow this machine is today
        table = latency_table_for(run, space, device="cpu", runtime="torch", progress=False)
        budget = 2 * float(np.max(table.predict([space.max(), *space.sample(np.random.default_rng(1), n=64)])))
        assert main(["search", str(run), "--predicted-evals", "30", "--latency-budget-ms", f"{budget:.4f}",
                     "--out", str(run / SEARCH)]) == 0
    (run.parent / "budget_ms.txt").write_text(f"{budget:.4f}")  # beside the run: not one of its files
    model = load_trained(run).supernet.extract(space.middle()).eval()
    export_subnet(model, space, space.middle(), run / EXPORT, formats="safetensors")
    (run / "arch.json").write_text(space.middle().to_json())
    return run


def _budget(run: Path) -> float:
    return float((run.parent / "budget_ms.txt").read_text())


def _table_folder(run: Path) -> Path:
    return table_folder(run, "cpu", "torch")


def _readers(run: Path):
    """File (relative to the run) -> (format, the project's own reader of it)."""
    space = run_space(run)
    table = lambda: LatencyTable.load(_table_folder(run)).check(space)  # noqa: E731
    tables = str(_table_folder(run).relative_to(run))

    def journal():
        accuracy = Objective("accuracy", lambda archs: np.zeros(len(archs)), maximize=True)
        metrics = [accuracy, table_latency_objective(LatencyTable.load(_table_folder(run)))]
        Archive(space, metrics, journal=run / SEARCH / "archive.journal.csv")

    return {
        "config.yaml": ("yaml", lambda: run_config(run)),
        "checkpoint.pt": ("binary", lambda: load_trained(run)),
        "predictors/accuracy.skops": ("binary", lambda: load_predictor(run / "predictors/accuracy.skops", space)),
        f"{tables}/latency_table.json": ("json", table),
        f"{tables}/latency_table.csv": ("csv", table),
        "evaluations.csv": ("csv", lambda: measured_archs(run, space, read_evaluations(run))),
        f"{SEARCH}/archive.journal.csv": ("csv", journal),
        f"{SEARCH}/front.csv": ("csv", lambda: choose_arch(run, space, pareto_index=0, search_folder=run / SEARCH)),
        f"{SEARCH}/archive.csv": ("csv", lambda: choose_arch(run, space, budget_ms=_budget(run),
                                                            search_folder=run / SEARCH)),
        f"{EXPORT}/arch.json": ("json", lambda: load_subnet(run / EXPORT)),
        f"{EXPORT}/weights.safetensors": ("binary", lambda: load_subnet(run / EXPORT)),
        "arch.json": ("json", lambda: choose_arch(run, space, arch_json=run / "arch.json")),
    }


FILES = ["config.yaml", "checkpoint.pt", "predictors/accuracy.skops", "latency_table.json", "latency_table.csv",
         "evaluations.csv", f"{SEARCH}/archive.journal.csv", f"{SEARCH}/front.csv", f"{SEARCH}/archive.csv",
         f"{EXPORT}/arch.json", f"{EXPORT}/weights.safetensors", "arch.json"]


@contextlib.contextmanager
def spoiling(path: Path, content: bytes):
    good = path.read_bytes()
    path.write_bytes(content)
    try:
        yield
    finally:
        path.write_bytes(good)  # readers may repair a file (a torn journal): put the good one back


@pytest.mark.parametrize("name", FILES)
def test_every_reader_accepts_or_refuses_a_spoiled_file_in_one_line(fuzz_run, name):
    readers = _readers(fuzz_run)
    key = next(k for k in readers if k == name or k.endswith("/" + name))
    kind, read = readers[key]
    path = fuzz_run / key
    good = path.read_bytes()
    assert outcome_of(read) == "accepted"  # the good file is read

    @examples(quick=12 if kind != "binary" or name.endswith(".skops") else 6, thorough=150)
    @given(spoiled(good, kind))
    def check(case):
        content, how = case
        with spoiling(path, content):
            tally(name, how, outcome_of(read))

    check()


def run_cli(argv: list[str], watched: Path) -> str:
    """Run the command line: exit 0, or exit 2 with one stderr line and no new file under ``watched``."""
    before = files_under(watched)
    err = io.StringIO()
    with time_limit(), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    assert code in (0, 2), f"exit {code}: {err.getvalue()[-2000:]}"
    if code == 0:
        return "accepted"
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], err.getvalue()
    assert files_under(watched) == before, f"{argv} refused but wrote {files_under(watched) - before}"
    return "refused"


def _command(name: str, run: Path, out: Path) -> list[str]:
    if name == "metrics.csv":
        return ["report", str(run)]
    objectives = ["--objectives", "accuracy,latency"] if name.endswith(".skops") else ["--objectives",
                                                                                        "macs,latency"]
    return ["search", str(run), *objectives, "--predicted-evals", "10", "--out", str(out)]


@pytest.mark.parametrize("name, kind", [("config.yaml", "yaml"), ("latency_table.json", "json"),
                                        ("latency_table.csv", "csv"), ("predictors/accuracy.skops", "binary"),
                                        ("metrics.csv", "csv")])
def test_commands_given_a_spoiled_file_exit_0_or_2_in_one_line(fuzz_run, tmp_path, name, kind):
    key = name if "/" in name or name in ("config.yaml", "metrics.csv") else \
        f"{_table_folder(fuzz_run).relative_to(fuzz_run)}/{name}"
    path = fuzz_run / key
    good = path.read_bytes()
    counter = iter(range(10**6))

    @examples(quick=6, thorough=60)
    @given(spoiled(good, kind))
    def check(case):
        content, how = case
        out = tmp_path / f"out{next(counter)}"
        with spoiling(path, content):
            tally(f"cli {name}", how, run_cli(_command(name, fuzz_run, out), fuzz_run.parent))

    check()


ARCH_FIELDS = ("resolution", "depths", "kernel_sizes", "expand_ratios", "widths", "heads")


@st.composite
def arch_documents(draw, good: dict):
    """Random architecture dicts: junk, or a good one with a field gone, of another type or out of range."""
    how = draw(st.sampled_from(["junk", "field removed", "field of another type", "value out of range"]))
    if how == "junk":
        return draw(st.one_of(JUNK, st.dictionaries(st.sampled_from(ARCH_FIELDS), JUNK, max_size=5))), how
    doc = dict(good)
    field = draw(st.sampled_from(sorted(doc)))
    if how == "field removed":
        del doc[field]
    elif how == "field of another type":
        doc[field] = draw(JUNK)
    else:
        value = doc[field]
        doc[field] = ([draw(st.integers(-3, 400)) for _ in value] if isinstance(value, list)
                      else draw(st.integers(-3, 400)))
    return doc, how


@pytest.mark.slow
def test_export_of_random_architecture_dicts_exits_0_or_2_in_one_line(fuzz_run, tmp_path):
    good = json.loads(run_space(fuzz_run).middle().to_json())
    counter = iter(range(10**6))

    @examples(quick=10, thorough=150)
    @given(arch_documents(good))
    def check(case):
        doc, how = case
        arch = tmp_path / "arch.json"
        arch.write_text(json.dumps(doc))
        out = tmp_path / f"export{next(counter)}"
        argv = ["export", str(fuzz_run), "--arch-json", str(arch), "--formats", "safetensors", "--out", str(out)]
        tally("cli export --arch-json", how, run_cli(argv, tmp_path))

    check()


KEYS = ["train.epochs", "train.lr", "data.name", "data.batch_size", "data.classes", "supernet.name",
        "supernet.overrides.resolutions", "sampler.name", "optim.lr", "train.seed", "init.source", "init.freeze"]
VALUES = st.one_of(st.sampled_from(["1", "0", "-1", "1e9", "nan", "[1,2]", "[]", "{}", "digits", "mnist5k", "null",
                                    "true", "'x'", "[", "tiny_mbv3", "uniform"]),
                   st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=8))


def test_train_dry_run_with_random_overrides_exits_0_or_2_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    @examples(quick=10, thorough=150)
    @given(st.lists(st.tuples(st.one_of(st.sampled_from(KEYS), st.text(max_size=10)), VALUES), min_size=1,
                    max_size=3))
    def check(overrides):
        argv = ["train", "mnist_sandwich", "--dry-run", "--set", "data.name=digits",
                *[f"{k}={v}" for k, v in overrides]]
        tally("cli train --dry-run --set", "random overrides", run_cli(argv, tmp_path))

    check()


TIMING_VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1e-9, 1e-300, 1e300]))


def test_a_table_with_random_timings_is_refused_or_predicts_positive_finite_times(fuzz_run, tmp_path):
    source = _table_folder(fuzz_run)
    space = run_space(fuzz_run)
    subnets = space.sample(np.random.default_rng(0), n=200)
    entries = pd.read_csv(source / "latency_table.csv")
    meta = json.loads((source / "latency_table.json").read_text())

    @examples(quick=12, thorough=150)
    @given(st.lists(st.tuples(st.sampled_from(["latency_units", "latency_ms"]), st.integers(0, len(entries) - 1),
                              TIMING_VALUES), max_size=4),
           st.sampled_from(["call_overhead_units", "calibration.slope", "calibration.intercept", None]), TIMING_VALUES)
    def check(cells, field, value):
        folder = tmp_path / "table"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(source, folder)
        edited = entries.copy()
        for column, row, number in cells:
            edited.loc[row, column] = number
        edited.to_csv(folder / "latency_table.csv", index=False)
        doc = {**json.loads(json.dumps(meta)), "calibration": meta.get("calibration") or {"slope": 1.0,
                                                                                          "intercept": 0.0}}
        doc.pop("csv_sha256", None)  # as an older table, or one edited along with its checksum: values decide
        if field is not None:
            *parents, key = field.split(".")
            (doc[parents[0]] if parents else doc)[key] = value
        (folder / "latency_table.json").write_text(json.dumps(doc))
        outcome = outcome_of(lambda: LatencyTable.load(folder))
        if outcome == "accepted":
            predicted = LatencyTable.load(folder).predict(subnets)
            assert np.isfinite(predicted).all() and (predicted > 0).all(), (cells, field, value)
        tally("latency table timings", "random numbers", outcome)

    check()


def test_exports_onto_one_folder_killed_at_random_points_leave_the_last_whole_one(fuzz_run, tmp_path):
    from unittest import mock

    import elasticnas.export as export_module

    space = run_space(fuzz_run)
    supernet = load_trained(fuzz_run).supernet
    archs = {"min": space.min(), "middle": space.middle(), "max": space.max()}
    out = tmp_path / "export"
    last = {}  # what the folder must hold: the last export that finished

    def killed_after(writes: int, write):
        calls = iter(range(10**6))

        def wrapped(*args, **kwargs):
            if next(calls) >= writes:
                raise KeyboardInterrupt
            return write(*args, **kwargs)

        return wrapped

    @examples(quick=6, thorough=40)
    @given(st.sampled_from(sorted(archs)), st.sampled_from(["safetensors", "safetensors,onnx"]),
           st.one_of(st.none(), st.integers(0, 3)))
    def check(name, formats, kill_after):
        arch, write_bytes, write_json = archs[name], export_module.atomic_write_bytes, export_module.atomic_write_json
        with contextlib.ExitStack() as stack:
            if kill_after is not None:
                counter = killed_after(kill_after, lambda f, *a, **k: f(*a, **k))
                stack.enter_context(mock.patch.object(export_module, "atomic_write_bytes",
                                                      lambda *a, **k: counter(write_bytes, *a, **k)))
                stack.enter_context(mock.patch.object(export_module, "atomic_write_json",
                                                      lambda *a, **k: counter(write_json, *a, **k)))
            try:
                written = export_subnet(supernet.extract(arch).eval(), space, arch, out, formats=formats)
                last.update(arch=arch, files=set(written["files"]))
            except KeyboardInterrupt:
                pass
        if not last:
            assert not out.exists()
        else:
            assert {p.name for p in out.iterdir()} == last["files"]
            assert json.loads((out / "arch.json").read_text())["arch"] == last["arch"].to_dict()
            load_subnet(out)  # the weights are the arch's, unchanged since written
        assert [p.name for p in tmp_path.iterdir()] == (["export"] if last else [])  # no staging left
        tally("export onto one folder", "killed" if kill_after is not None else "whole", "accepted")

    check()


def test_random_device_names_are_known_devices_or_refused_in_one_line():
    from elasticnas.hardware.runtimes import check_runtime

    names = st.one_of(st.text(max_size=12), st.sampled_from(["cpu", "cuda:0", "../x", "/abs", "cpu/../..", "cuda:-1",
                                                             "cpu\n", "mps", "cuda:99999"]))

    @examples(quick=30, thorough=300)
    @given(names)
    def check(device):
        outcome = outcome_of(lambda: check_runtime("torch", device))
        if outcome == "accepted":
            assert device == "cpu"  # no CUDA here; nothing else names a device
        tally("device name", "random text", outcome)

    check()


def test_random_storage_urls_are_refused_in_one_line_without_their_password():
    from elasticnas.search.studies import check_storage_url

    secret = "Zq9secret"
    urls = st.builds(lambda scheme, user, host, port, query: f"{scheme}://{user}:{secret}@{host}:{port}/db{query}",
                     st.sampled_from(["postgresql", "mysql", "sqlite", "x", ""]), st.text(max_size=6),
                     st.text(max_size=6), st.one_of(st.integers(-5, 70000).map(str), st.text(max_size=5)),
                     st.sampled_from(["", f"?password={secret}", f"?x=1&PWD={secret}"]))

    @examples(quick=30, thorough=300)
    @given(urls)
    def check(url):
        try:
            check_storage_url(url)
            outcome = "accepted"
        except ConfigError as error:
            assert "\n" not in str(error) and secret not in str(error), str(error)
            outcome = "refused"
        tally("storage URL", "random parts", outcome)

    check()
