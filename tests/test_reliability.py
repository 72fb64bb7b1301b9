"""Interruptions and contention: a killed trained cell resumes to the same result; two `dvc repro`
at once are refused by DVC's lock, nothing corrupted (and the one that runs, after a change of the
synthetic entry of QAT's budget, reruns only the QAT cell and its control)."""

import json
import subprocess
import sys
import time

import pytest
import yaml

from conftest import computing, dvc, kill_after, ran_stages, run

pytestmark = pytest.mark.slow


def test_a_killed_trained_cell_resumes_to_the_same_result(tiny_pipeline, tmp_path):
    """SIGKILL `stages/cell.py` on a QAT cell after its first resumable checkpoint, rerun it: the
    same fine-tuning steps, translations and BLEU as the cell the pipeline ran uninterrupted."""
    cell = "qat-sym-4-full"
    cmd = [sys.executable, "stages/cell.py", "--plan", f"data/plan/cells/{cell}.json",
           "--baseline", "data/model/model.pt", "--tokenized", "data/tokenized",
           "--valid", "data/prepared/valid.parquet", "--test", "data/prepared/test.parquet",
           "--resume", str(tmp_path / "resume.pt"), "--out", str(tmp_path / "cell"),
           "--metrics", str(tmp_path / "metrics.json")]
    env = {"PYTHONPATH": str(tiny_pipeline), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(cmd, cwd=tiny_pipeline, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    kill_after(proc, tmp_path / "resume.pt", "the cell")
    assert not (tmp_path / "metrics.json").exists()
    done = subprocess.run(cmd, cwd=tiny_pipeline, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "resuming from" in done.stdout + done.stderr
    resumed = json.loads((tmp_path / "metrics.json").read_text())
    straight = json.loads((tiny_pipeline / f"metrics/cells/{cell}.json").read_text())
    for key in ("bleu", "chrf", "finetune_steps", "compression_ratio", "stored_bits"):
        assert resumed[key] == straight[key], key
    assert (tmp_path / "cell/hyps.txt").read_text() == (tiny_pipeline / f"data/cells/{cell}/hyps.txt").read_text()
    assert not (tmp_path / "resume.pt").exists()


def writing(rwlock) -> bool:
    try:
        return bool(json.loads(rwlock.read_text()).get("write"))
    except (FileNotFoundError, json.JSONDecodeError):
        return False


def test_two_repros_at_once_are_refused_by_dvcs_lock(tiny_pipeline):
    """The first repro follows a change of the synthetic entry of QAT's budget (data is synthetic, so
    that entry is a dependency, where tests/test_pipeline.py shows the other corpora's are not), which
    gives it cells to train: exactly the QAT cell and its control (and the bookkeeping) rerun, and the
    cell fine-tunes."""
    params = yaml.safe_load((tiny_pipeline / "params.yaml").read_text())
    params["qat"]["epochs"] = {"synthetic": params["qat"]["epochs"] + 1, "multi30k": 5, "files": 3}
    # a learning rate no other test uses: the session's shared run-cache cannot hold these cells, so
    # the repro computes them (a restore writes no lock long enough to be seen)
    params["qat"]["lr"] = 1.234e-3
    (tiny_pipeline / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env_cmd = [sys.executable, "-m", "dvc", "repro"]
    try:
        first = subprocess.Popen(env_cmd, cwd=tiny_pipeline, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={"PYTHONPATH": str(tiny_pipeline),
                                      "PATH": f"{sys.executable.rsplit('/', 1)[0]}:/usr/bin:/bin"})
        # DVC's rwlock names the outputs of the stage running (the file outlives earlier repros)
        rwlock, deadline = tiny_pipeline / ".dvc/tmp/rwlock", time.time() + 60
        while not writing(rwlock) and time.time() < deadline and first.poll() is None:
            time.sleep(0.02)
        assert writing(rwlock), f"the first repro ran no stage: {first.communicate() if first.poll() is not None else ''}"
        second = dvc(["repro"], tiny_pipeline, check=False)
        out, err = first.communicate(timeout=600)
        assert first.returncode == 0, err
        assert second.returncode != 0 and "lock" in (second.stderr + second.stdout).lower(), second.stderr
        assert "up to date" in dvc(["status"], tiny_pipeline).stdout   # the first run finished cleanly
        assert ran_stages(out) == {"resolve", "plan", "cell@qat-sym-4-full", "cell@qat-control", "aggregate"}
        assert json.loads((tiny_pipeline / "metrics/cells/qat-sym-4-full.json").read_text())["finetune_steps"] > 0
    finally:
        run(["git", "checkout", "-q", "--", "."], tiny_pipeline)
        # the rest from the run-cache
        assert computing(tiny_pipeline, ran_stages(dvc(["repro"], tiny_pipeline).stdout)) <= {"aggregate"}


def test_a_corrupted_cache_object_is_not_used(tmp_path):
    """Garbage appended to the cached copy of an output: `dvc repro` does not check it out as if
    it were the output, it recomputes the stage, and the workspace gets the true bytes back."""
    import hashlib

    from conftest import make_project, tiny_params

    project = make_project(tmp_path, tiny_params())   # its own cache: the shared one stays intact
    dvc(["repro", "prepare"], project)
    split = project / "data/prepared/train.parquet"
    md5 = hashlib.md5(split.read_bytes()).hexdigest()
    cached = project / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    cached.chmod(0o644)
    with open(cached, "ab") as f:
        f.write(b"garbage")
    for path in (project / "data/prepared").iterdir():
        path.unlink()
    out = dvc(["repro", "prepare"], project).stdout
    assert "Running stage 'prepare'" in out
    assert hashlib.md5(split.read_bytes()).hexdigest() == md5
