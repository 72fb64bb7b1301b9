"""`tcompress run-stages` (tcompress/without_dvc.py) runs dvc.yaml's commands where DVC is not
installed (the GPU machine), and benchmarks/lottery_device.sh runs the 18-epoch lottery comparison with it: the
commands must be the ones DVC would run, `-S` must edit params.yaml as `dvc exp run -S` does, a
failing stage must stop the run, and the device script must produce every arm from one baseline."""

import json
import os
import shutil
import subprocess
import sys
import tarfile

import click
import pytest
import yaml

from conftest import REPO
from tcompress import without_dvc as runner
from tcompress.params import load_params


def dvc_yaml() -> tuple[dict, dict]:
    return (yaml.safe_load((REPO / "dvc.yaml").read_text()),
            yaml.safe_load((REPO / "stages" / "cells.yaml").read_text()))


def test_every_stage_gets_the_command_dvc_resolves_for_it():
    from dvc.repo import Repo

    resolved = {stage.addressing: stage.cmd for stage in Repo(str(REPO)).index.stages}
    dvc, cells = dvc_yaml()
    assert any("@" in name for name in resolved) and any(name.startswith("chain@") for name in resolved)
    for name, cmd in resolved.items():
        assert runner.stage_command(dvc, cells, name) == cmd, name


def test_unknown_stages_and_items_are_named():
    dvc, cells = dvc_yaml()
    with pytest.raises(click.BadParameter, match="no stage 'trian'"):
        runner.stage_command(dvc, cells, "trian")
    with pytest.raises(click.BadParameter, match="'imp-fool' is not one of"):
        runner.stage_command(dvc, cells, "cell@imp-fool")
    with pytest.raises(click.BadParameter, match="'train' is not a foreach stage"):
        runner.stage_command(dvc, cells, "train@x")


def project_copy(tmp_path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    for folder in ("stages", "tcompress", "benchmarks"):
        shutil.copytree(REPO / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "results"))
    return tmp_path


def run_runner(project, *args):
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run([sys.executable, "-m", "tcompress.cli", "run-stages", *args], cwd=project, env=env,
                          capture_output=True, text=True)


def test_set_edits_params_as_yaml_values_and_rejects_unknown_keys(tmp_path):
    project = project_copy(tmp_path)
    done = run_runner(project, "-S", "data=multi30k", "-S", "methods=[imp]", "-S", "imp.fraction=0.4152",
                      "-S", "lottery.epochs.multi30k=18", "resolve")
    assert done.returncode == 0, done.stderr
    params = load_params(project / "params.yaml")  # the strict loader accepts what -S wrote
    assert (params.data, params.methods, params.method_params("imp").fraction) == ("multi30k", ("imp",), 0.4152)
    raw = yaml.safe_load((project / "params.yaml").read_text())
    assert raw["lottery"]["epochs"] == {"synthetic": 2, "multi30k": 18, "files": 2}
    cells = json.loads((project / "data" / "config" / "cells.json").read_text())["cells"]  # resolve ran on it
    assert {name for name, cell in cells.items() if cell["selected"]} == {"imp-full", "imp-control"}
    assert cells["imp-full"]["params"]["fraction"] == 0.4152

    before = (project / "params.yaml").read_text()
    bad = run_runner(project, "-S", "lottery.epoch.multi30k=18", "resolve")
    assert bad.returncode != 0 and "params.yaml has no 'lottery.epoch'" in bad.stderr
    assert (project / "params.yaml").read_text() == before  # nothing half-written


def test_a_failing_stage_stops_the_run_with_its_exit_code(tmp_path):
    project = project_copy(tmp_path)
    done = run_runner(project, "tokenize", "resolve")  # tokenize before anything it reads exists
    assert done.returncode != 0
    assert "[tokenize] exit" in done.stderr and "[resolve]" not in done.stderr
    assert not (project / "data" / "config").exists()


TINY_EXTRA = " ".join(f"-S {kv}" for kv in (
    "data=synthetic", "synthetic.train_size=300", "synthetic.valid_size=20", "synthetic.test_size=20",
    "tokenizer.vocab_size=400", "model.d_model=32", "model.d_ff=64", "model.n_layers=1", "model.n_heads=2",
    "train.epochs.synthetic=1", "train.batch_tokens=400", "lottery.epochs.synthetic=1",
    "imp.epochs.synthetic=1", "imp.train_sentences.synthetic=100", "imp.steps_per_round.synthetic=2",
    "evaluate.beam_size=1"))


@pytest.mark.slow
def test_the_device_script_runs_every_arm_from_one_baseline(tmp_path):
    project = project_copy(tmp_path / "repo")
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "DATA": str(tmp_path / "unused"), "OUT": str(out), "WORK": str(work), "DEVICE": "cpu",
           "SEEDS": "7", "EXTRA": TINY_EXTRA,
           "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])}
    done = subprocess.run(["bash", "benchmarks/lottery_device.sh"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and "all done" in done.stdout, done.stdout + done.stderr
    with tarfile.open(out / "lottery_device.tgz") as tar:
        tar.extractall(tmp_path / "got", filter="data")
    got = tmp_path / "got" / "collected" / "seed7"
    params = yaml.safe_load((got / "params.yaml").read_text())
    assert (params["seeds"], params["train"]["precision"], params["lottery"]["epochs"]["multi30k"]) == (7, "fp32", 18)
    baseline_steps = json.loads((got / "train.json").read_text())["steps"]
    expected = {"lottery-50-rewind-full": (0.5, "rewind"), "lottery-50-random-full": (0.5, "random"),
                "lottery-80-rewind-full": (0.8, "rewind"), "lottery-80-random-full": (0.8, "random"),
                "imp-50-full": (0.5, None), "imp-80-full": (0.8, None)}
    for cell, (sparsity, init) in expected.items():
        metrics = json.loads((got / f"{cell}.json").read_text())
        assert round(metrics["sparsity"], 2) == sparsity, cell
        assert metrics.get("init") == init, cell
        if init:  # a ticket and its random control train the baseline's budget, from its θ0
            assert metrics["finetune_steps"] == baseline_steps, cell
        hyps = (got / f"{cell}.hyps.txt").read_text().split("\n")[:-1]
        assert len(hyps) == metrics["sentences"] == 20, cell
    assert (got / "baseline.greedy.txt").exists()


def test_the_device_script_fails_when_a_stage_does(tmp_path):
    project = project_copy(tmp_path / "repo")
    env = {**os.environ, "DATA": str(tmp_path / "unused"), "OUT": str(tmp_path / "out"), "WORK": str(tmp_path / "w"),
           "DEVICE": "cpu", "SEEDS": "7", "EXTRA": TINY_EXTRA + " -S train.lr=-1",  # resolve rejects it
           "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])}
    done = subprocess.run(["bash", "benchmarks/lottery_device.sh"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1
    assert "seed 7: baseline failed" in done.stdout and "failed: " in done.stdout
    log = (tmp_path / "w" / "collected" / "seed7" / "baseline.log").read_text()
    assert "train.lr" in log  # the one line naming the key


@pytest.mark.slow
def test_outputs_computed_without_dvc_are_adopted_by_dvc_commit(tmp_path):
    """The fallback's way back into the pipeline: stages run by `tcompress run-stages` (no DVC there),
    then `dvc commit` in the clone: DVC records their outputs in dvc.lock, its cache and its
    run-cache, so `dvc status` finds them up to date and another clone on the cache restores them
    instead of recomputing."""
    from conftest import computing, dvc, make_project, ran_stages, tiny_params

    cache = tmp_path / "cache"
    params = tiny_params(methods=["ptq"], train={"epochs": 1})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    project = make_project(tmp_path / "a", params, cache)
    stages = ["resolve", "prepare", "tokenize", "train"]
    done = run_runner(project, *stages)
    assert done.returncode == 0, done.stderr
    assert "model.pt" in {p.name for p in (project / "data/model").iterdir()}
    dvc(["commit", "-f", *stages], project)
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    assert set(stages) <= set(lock)
    assert dvc(["status", *stages], project).stdout.strip().endswith("Data and pipelines are up to date.")
    other = make_project(tmp_path / "b", params, cache)
    out = dvc(["repro", "train"], other).stdout
    assert not computing(other, ran_stages(out)) & set(stages), out   # restored from the run-cache
    assert (other / "data/model/model.pt").read_bytes() == (project / "data/model/model.pt").read_bytes()
