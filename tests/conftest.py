import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tcompress.grid import cells_file_text
from tcompress.params import params_from_dict

REPO = Path(__file__).resolve().parents[1]
MULTI30K = REPO.parent / "shared" / "data" / "multi30k"

# `python -m pytest` runs the suite on pytest-xdist workers (pyproject.toml: `-n auto`, at most
# MAX_WORKERS). Each worker gets its share of the CPUs: torch, oneDNN and MKL here and in the stages
# the tests start read OMP_NUM_THREADS (set before anything imports torch), CTranslate2's
# `threads: 0` too (tcompress.translate_ct2). Without the cap every worker would spin one thread per
# core and the suite would run slower on two workers than on one.
MAX_WORKERS = 4
CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, CPUS // WORKERS)))


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker per CPU, at most MAX_WORKERS (each builds the tiny project once)."""
    return max(1, min(MAX_WORKERS, CPUS))


# Test files whose tests run on one worker, one after the other: they compute the same stages (seed 5
# of TINY's grid), which the second restores from the session's run-cache.
SHARED_SCOPES = {"tests/test_record.py": "tiny seed 5", "tests/test_seeds.py": "tiny seed 5"}


def pytest_xdist_make_scheduler(config, log):
    """A test file's tests run on one worker (its module fixtures are built once), and the files of
    SHARED_SCOPES together. (Not `--dist loadgroup`: it marks tests by renaming their node ids,
    which pytest 9.2 no longer allows.)"""
    from xdist.scheduler import LoadFileScheduling

    class Scheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return SHARED_SCOPES.get(scope, scope)

    return Scheduling(config, log)


def tiny_catalog(**methods) -> dict:
    """A catalog with stages for the given methods' values only: every other registered method
    gets no values (a trained method keeps its control's stage, which every catalog has), so a
    test project pays DVC's bookkeeping (about a second a stage) only for cells it looks at.
    ``chains``: the catalog's chains."""
    from tcompress.methods import registered

    catalog = {m.name: {a.key: [] for a in m.axes} for m in registered()}
    chains = methods.pop("chains", [])
    for name, axes in methods.items():
        assert set(axes) == set(catalog[name]), f"{name}: give every axis ({', '.join(catalog[name])})"
        catalog[name] = axes
    return {**catalog, "chains": chains}


# The tiny configuration every end-to-end test uses: the real stages on a small synthetic corpus.
# Its grid is the one session project's (`tiny_pipeline`): two 8-bit PTQ cells, one cell each of
# QAT, AGP and IMP, and their controls. Its catalog adds the off cells the tests select or look at
# (PTQ's attention cell, an 8-bit QAT cell) and an off chain that starts from the AGP cell; every
# other method has its control's stage alone.
TINY = {
    "data": "synthetic",
    "synthetic": {"train_size": 300, "valid_size": 20, "test_size": 20, "seed": 3},
    "tokenizer": {"vocab_size": 400},
    "model": {"d_model": 32, "n_layers": 1, "n_heads": 2, "d_ff": 64, "dropout": 0.1},
    "train": {"epochs": 2, "batch_tokens": 400, "warmup_steps": 10, "precision": "fp32"},
    "runtime": {"threads": 1, "checkpoint_every": 5},
    "evaluate": {"beam_size": 2, "batch_sentences": 16},
    "methods": ["ptq", "qat", "agp", "imp"], "chains": [],
    "bits": [8], "modes": ["sym"], "groups": ["ff", "full"],
    "catalog": tiny_catalog(ptq={"bits": [8], "modes": ["sym"], "groups": ["ff", "att", "full"]},
                            qat={"bits": [8, 4], "modes": ["sym"], "groups": ["full"]},
                            agp={"schedules": ["10-70-1"], "groups": ["full"]}, imp={"groups": ["full"]},
                            chains=["agp:10-70-1-full > qat:sym-4"]),
    "ptq": {"bits": None, "modes": None, "groups": None, "calibration_batches": 2, "calibration_batch_tokens": 400},
    "qat": {"bits": [4], "modes": ["sym"], "groups": ["full"], "epochs": 1, "warmup_steps": 2, "lr": 1.0e-3},
    "agp": {"schedules": ["10-70-1"], "groups": ["full"], "epochs": 2, "start": 0, "end": 8, "warmup_steps": 2},
    "imp": {"groups": ["full"], "rounds": 2, "steps_per_round": 4, "epochs": 1, "warmup_steps": 2},
    "kmeans": {"bits": [4], "groups": ["att"], "epochs": 1, "warmup_steps": 2, "lr": 1.0e-3},
    "kmeans_ptq": {"bits": [4], "groups": ["att"]},
    "binary": {"groups": ["att"], "epochs": 1, "warmup_steps": 2, "lr": 1.0e-3},
    "bsflex": {"centroids": ["flex"], "groups": ["att"], "epochs": 1, "warmup_steps": 2, "lr": 1.0e-3},
    "qsgd": {"bits": [8], "groups": ["att"], "epochs": 1, "warmup_steps": 2, "lr": 1.0e-3},
    "fullyqt": {"bits": [8], "ops": ["all"], "epochs": 1, "warmup_steps": 2, "lr": 1.0e-3},
    "fullyqt_ptq": {"bits": [8], "ops": ["all"], "calibration_batches": 2, "calibration_batch_tokens": 400},
    "nodeprune": {"rules": ["adaptive", "xmax", "l1"], "estimate_batches": 3, "estimate_batch_tokens": 400},
    "q8bert": {"bits": [8], "groups": ["full"], "epochs": 1, "warmup_steps": 2, "lr": 1.0e-3},
    "lottery": {"sparsities": [50], "inits": ["rewind", "random"], "groups": ["full"], "epochs": 1,
                "warmup_steps": 2},
    "distill": {"kds": ["word", "seq", "none"], "d_models": [16], "layers": [1], "d_ffs": [32], "n_heads": 2,
                "epochs": 2, "warmup_steps": 5},
    "teacher": {"beam_size": 2, "batch_sentences": 32},
    "quant_noise": {"quantizers": ["int4", "ipq"], "rates": [10, 100], "groups": ["full"], "centroids": 16,
                    "stages": 2, "iterations": 5, "epochs": 1, "warmup_steps": 2, "lr": 1.0e-3},
}


def deep_update(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def tiny_params(**overrides) -> dict:
    """params.yaml under TINY and then ``overrides``. The catalog starts from TINY's, not from
    params.yaml's (the default run's, which may list far more cells); a ``catalog`` override adds
    its values to it, and one made by ``tiny_catalog`` (every method named) replaces it."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    tiny = yaml.safe_load(yaml.safe_dump(TINY))
    params["catalog"] = tiny.pop("catalog")
    deep_update(params, tiny)
    return deep_update(params, yaml.safe_load(yaml.safe_dump(overrides)))


# Translations for significance tests: references drawn from a small vocabulary, and systems that
# replace each word with a random one at a given rate (a higher rate, a lower BLEU).
WORDS = "a b c d e f g h the cat sat on mat dog".split()


def references(rng: random.Random, n: int = 300) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(n)]


def noisy(refs: list[str], rate: float, rng: random.Random) -> list[str]:
    return [" ".join(w if rng.random() > rate else rng.choice(WORDS) for w in r.split()) for r in refs]


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    # Stage commands say `python`: make it this interpreter, whether or not its venv is activated;
    # and import the project's own copy of tcompress (a test may add a method file to it).
    env = {**os.environ, "PYTHONPATH": str(cwd),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_project(dest: Path, params: dict, cache: Path | None = None) -> Path:
    """A git + DVC repository holding this project's pipeline and the given params.

    Projects made with the same ``cache`` share DVC's cache and run-cache, so a stage another test
    project already ran with the same inputs (the tiny baseline, say) is restored, not recomputed."""
    for name in ("dvc.yaml", ".dvcignore"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, dest / name)
    shutil.copytree(REPO / "stages", dest / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "tcompress", dest / "tcompress", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "data" / "corpus", dest / "data" / "corpus")  # a `files` corpus's tracked folder
    for folder in ("data/seeds", "metrics/seeds"):   # the aggregate reads them (a README alone for one seed)
        (dest / folder).mkdir(parents=True)
        shutil.copy(REPO / folder / "README.md", dest / folder / "README.md")
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (dest / ".gitignore").write_text("__pycache__/\n/data/resume/\n/data/downloads/\n")
    run(["git", "init", "-q"], dest)
    run(["git", "config", "user.email", "t@example.com"], dest)
    run(["git", "config", "user.name", "test"], dest)
    run([sys.executable, "-m", "dvc", "init", "-q"], dest)
    # What `dvc config core.analytics false` and `dvc cache dir` write, without two more DVC starts.
    config = "[core]\n    analytics = false\n" + (f"[cache]\n    dir = {cache}\n" if cache is not None else "")
    (dest / ".dvc" / "config").write_text(config)
    (dest / "stages" / "cells.yaml").write_text(cells_file_text(params_from_dict(params)))  # as `tcompress catalog`
    shutil.copytree(REPO / ".dvc" / "plots", dest / ".dvc" / "plots")  # the BLEU-vs-ratio plot template
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "init"], dest)
    return dest


def repro_committed(tmp_path_factory, cache: Path, name: str, params: dict) -> Path:
    """A project with ``params`` after `dvc repro`, its results committed (so tests can diff against them)."""
    project = make_project(tmp_path_factory.mktemp(name), params, cache)
    dvc(["repro"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", name], project)
    return project


def scored_cells(project: Path) -> set[str]:
    """The cells with metrics, each checked to be scored from its own artifact: its BLEU is
    sacrebleu's on its translations, its file size the artifact's."""
    import sacrebleu

    from tcompress.data.corpora import read_split

    refs = read_split(project / "data/prepared/test.parquet")[1]
    cells = set()
    for path in (project / "metrics/cells").glob("*.json"):
        m = json.loads(path.read_text())
        if not m or "same_as" in m:   # off, or a control another control's stage trained
            continue
        cell = path.stem
        hyps = (project / f"data/cells/{cell}/hyps.txt").read_text().split("\n")[:-1]
        assert m["bleu"] == round(sacrebleu.corpus_bleu(hyps, [refs]).score, 4), cell
        assert m["file_bytes"] == (project / f"data/cells/{cell}/model.safetensors").stat().st_size, cell
        cells.add(cell)
    return cells


def cell_stage_without_torch(entry: dict, tmp: Path) -> subprocess.CompletedProcess:
    """``stages/cell.py`` on a plan holding ``entry`` (its folder ``tmp/cell``, its metrics
    ``tmp/m.json``), in a fresh interpreter that fails if the stage imported torch."""
    plan = tmp / "plan.json"
    plan.write_text(json.dumps(entry))
    code = ("import sys; sys.argv = ['cell', '--plan', %r, '--baseline', %r, '--tokenized', %r, '--out', %r,"
            " '--valid', 'v', '--test', 't', '--resume', 'r', '--metrics', %r]\n"
            "from stages.cell import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n") % (
        str(plan), str(plan), str(tmp), str(tmp / "cell"), str(tmp / "m.json"))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return proc


def shared_controls(project: Path) -> dict[str, str]:
    """Each control trained by another control's stage (the same budget), with that control; its
    folder holds the marker alone."""
    shared = {}
    for path in (project / "metrics/cells").glob("*.json"):
        m = json.loads(path.read_text())
        if "same_as" in m:
            assert [p.name for p in (project / "data/cells" / path.stem).iterdir()] == ["same_as.json"], path.stem
            shared[path.stem] = m["same_as"]
    return shared


def kill_after(proc: subprocess.Popen, appears: Path, what: str, group: bool = False) -> None:
    """SIGKILL ``proc`` as soon as ``appears`` exists (its first resumable checkpoint), as a crash would;
    ``group``: its whole process group (``proc`` started with ``start_new_session=True``), as a dying machine would."""
    deadline = time.time() + 120
    while not appears.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    if group and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"{what} finished before it could be interrupted"


def ran_stages(out: str) -> set[str]:
    """The stages a `dvc repro` printed as running."""
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")}


def restored_stages(out: str) -> set[str]:
    """The stages a `dvc repro` restored from the run-cache instead of running them."""
    return {line.split("'")[1] for line in out.splitlines()
            if line.startswith("Stage '") and "' is cached - skipping run" in line}


def computing(project: Path, stages: set[str]) -> set[str]:
    """The stages that computed: a catalog chain that is not selected also runs when the cell it
    starts from changes (its stage depends on that cell's folder), but only rewrites its 'off'
    marker, without torch (0.7 s); its metrics stay empty."""
    def off(stage: str) -> bool:
        if not stage.startswith("chain@"):
            return False
        return json.loads((project / "metrics" / "cells" / f"{stage.split('@', 1)[1]}.json").read_text()) == {}
    return {s for s in stages if not off(s)}


def dvc(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], cwd, check)


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One DVC cache for every test project of this pytest run, its xdist workers' too (their base
    folders share a parent): a stage one test computed is restored, not recomputed, by the next."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    cache = root / "dvc-cache"
    cache.mkdir(exist_ok=True)
    return cache


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory, shared_cache) -> Path:
    """The tiny pipeline run once through `dvc repro`, its results committed: the one project the
    end-to-end tests of TINY's grid share. A test that changes it puts it back (`git checkout`, then
    `dvc repro`, which restores every output from the run-cache)."""
    return repro_committed(tmp_path_factory, shared_cache, "tiny", tiny_params())


@pytest.fixture
def multi30k_dir() -> Path:
    if not (MULTI30K / "SHA256SUMS").exists():
        pytest.skip(f"Multi30k mirror not found at {MULTI30K}")
    return MULTI30K
