import json
import math
import subprocess
import sys

import pytest
import torch
import yaml

from tcompress.checkpoint import CheckpointError, model_payload, save_atomic
from tcompress.config import ModelConfig, TrainConfig
from tcompress.loader import load_model
from tcompress.params import params_from_dict
from tcompress.model import Vocab, make_model
from tcompress.plan import resolve
from tcompress.training import Hook, ParallelData, fit, ids_digest, inverse_sqrt_lr, stale_reason
from conftest import REPO, kill_after, tiny_params


def test_inverse_sqrt_schedule_matches_formula():
    peak, warmup = 1e-3, 100
    d_model = 256
    # Vaswani et al. (3): lrate = d^-0.5 · min(step^-0.5, step · warmup^-1.5), rescaled to peak at warmup.
    noam = lambda s: d_model ** -0.5 * min(s ** -0.5, s * warmup ** -1.5)
    for step in [1, 10, 50, 99, 100, 101, 400, 10_000]:
        assert inverse_sqrt_lr(step, peak, warmup) == pytest.approx(peak * noam(step) / noam(warmup))
    assert inverse_sqrt_lr(400, peak, warmup) == pytest.approx(peak / 2)


def _toy_data(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    src, tgt = [], []
    for _ in range(n):
        length = int(torch.randint(3, 9, (1,), generator=g))
        s = torch.randint(4, 30, (length,), generator=g).tolist()
        src.append(s + [3])
        tgt.append([2] + list(reversed(s)) + [3])   # reversal: the decoder must attend
    return ParallelData(src, tgt)


class CountingHook(Hook):
    def __init__(self):
        self.steps = 0

    def on_step_end(self, model, state):
        self.steps += 1

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]


def _run(tmp, stop=None, hook=None, identity=None):
    torch.manual_seed(0)
    model = make_model(ModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=32, dropout=0.3), Vocab(32, 32))
    cfg = TrainConfig(epochs=3, batch_tokens=80, warmup_steps=5, precision="fp32")
    data = _toy_data()
    state = fit(model, data, _toy_data(20, 1), cfg, seed=7, best_path=tmp / "best.pt", resume_path=tmp / "resume.pt",
                identity=identity or {"run": "toy"}, hooks=[hook] if hook else [], progress=False,
                stop_after_steps=stop, checkpoint_every=4)
    return model, state


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    full_model, full_state = _run(tmp_path / "a", hook=CountingHook())
    hook = CountingHook()
    _, partial = _run(tmp_path / "b", stop=10, hook=hook)   # stops mid-epoch, as a kill after step 10 would
    assert partial.step == 10 and partial.epoch < 3
    hook = CountingHook()
    resumed_model, resumed_state = _run(tmp_path / "b", hook=hook)
    assert resumed_state.step == full_state.step
    assert hook.steps == full_state.step               # hook state travels in the checkpoint
    assert [h["val_loss"] for h in resumed_state.history] == [h["val_loss"] for h in full_state.history]
    for (name, a), (_, b) in zip(full_model.state_dict().items(), resumed_model.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_resume_file_of_another_run_is_ignored_saying_why(tmp_path, capsys):
    _run(tmp_path, stop=6, identity={"config": "a", "train ids": "x"})
    _, state = _run(tmp_path, identity={"config": "a", "train ids": "y"})   # the data changed
    assert state.step > 6 and state.history[0]["epoch"] == 1
    captured = capsys.readouterr()
    log = captured.err + captured.out
    assert "ignoring" in log and "its train ids differs from this run's" in log
    assert stale_reason({"a": 1, "b": 2}, {"a": 1, "b": 3}) == "its b differs from this run's"
    assert stale_reason({"a": 1}, {"a": 1}) is None


def test_token_id_digest_sees_every_id():
    a = [[5, 6, 7], [8]]
    assert ids_digest(a) == ids_digest([[5, 6, 7], [8]])
    assert ids_digest(a) != ids_digest([[5, 6, 7], [9]])        # one id of a late sentence
    assert ids_digest(a) != ids_digest([[5, 6], [7, 8]])        # same ids, other boundaries


def test_training_lowers_validation_loss(tmp_path):
    _, state = _run(tmp_path)
    losses = [h["val_loss"] for h in state.history]
    assert losses[-1] < losses[0] and math.isfinite(losses[-1])


def test_checkpoints_load_without_running_code(tmp_path):
    torch.manual_seed(0)
    model = make_model(ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=16), Vocab(20, 20))
    save_atomic(model_payload(model, epoch=1), tmp_path / "ok.pt")
    loaded, payload = load_model(tmp_path / "ok.pt")
    assert payload["epoch"] == 1
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))

    class Evil:
        def __reduce__(self):
            return (exec, ("open('pwned', 'w').write('x')",))

    torch.save({**model_payload(model), "extra": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused: it holds objects other than tensors"):
        load_model(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_killed_train_stage_resumes_to_the_same_result(tiny_pipeline, tmp_path):
    """SIGKILL the real train stage after its first resumable checkpoint, rerun it, compare."""
    params = tiny_params(train={"epochs": 6}, runtime={"threads": 1, "checkpoint_every": 3})
    data = tiny_pipeline / "data"

    def train(workdir, kill=False):
        workdir.mkdir()
        (workdir / "params.yaml").write_text(yaml.safe_dump(params))
        (workdir / "train.json").write_text(json.dumps(resolve(params_from_dict(params))["train"]))
        cmd = [sys.executable, str(REPO / "stages/train.py"), "--config", "train.json",
               "--tokenized", str(data / "tokenized"),
               "--prepared", str(data / "prepared"), "--out", "model", "--resume", "resume/train.pt",
               "--metrics", "metrics.json", "--curve", "curve.json"]
        env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if kill:
            kill_after(proc, workdir / "resume/train.pt", "training")
            assert not (workdir / "metrics.json").exists()
            proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate()
        assert proc.returncode == 0, err.decode()
        return workdir, out.decode() + err.decode()

    plain, _ = train(tmp_path / "plain")
    killed, log = train(tmp_path / "killed", kill=True)
    assert "resuming from" in log
    assert json.loads((plain / "curve.json").read_text()) == json.loads((killed / "curve.json").read_text())
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (plain, killed))
    assert a["best_val_bleu"] == b["best_val_bleu"] and a["best_val_loss"] == b["best_val_loss"]
    assert not (killed / "resume/train.pt").exists()
