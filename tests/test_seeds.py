"""Seeds as a grid axis: one baseline per seed, every selected cell per seed against its own seed's
references, and statistics over seeds whose interval resamples seeds and sentences together."""

import json
import random
import shutil

import numpy as np
import pandas as pd
import pytest
import sacrebleu
import yaml

from conftest import REPO, dvc, noisy, ran_stages, references, restored_stages, run, tiny_params
from tcompress.grid import cells_file_text
from tcompress.params import params_from_dict
from tcompress.plan import resolve
from tcompress.schema import ConfigError
from tcompress.shard import SEED_UPSTREAM, split
from tcompress.significance import N_SAMPLES, SEED, paired_bootstrap, seed_bootstrap


def _params(**overrides):
    return params_from_dict(tiny_params(**overrides))


# ---- params and resolve --------------------------------------------------------------------------

def test_a_seed_outside_the_catalog_and_the_old_key_are_refused_by_name():
    with pytest.raises(ConfigError, match=r"seeds: 2 is not in catalog.seeds .*tcompress catalog"):
        _params(seeds=[1, 2])
    raw = tiny_params()
    raw["seed"] = raw.pop("seeds")
    with pytest.raises(ConfigError, match="seed: the key is `seeds` now"):
        params_from_dict(raw)
    with pytest.raises(ConfigError, match="seeds: .* lists a value twice"):
        _params(seeds=[1, 1])
    assert _params(seeds=7).seeds == (7,)   # one value, as `-S seeds=7` writes it


def test_each_extra_seed_gets_the_first_seeds_configs_with_its_own_seed():
    one = resolve(_params(seeds=[1], catalog={"seeds": [2, 3]}))
    three = resolve(_params(seeds=[1, 2, 3], catalog={"seeds": [2, 3]}))
    # the first seed's configs do not move when seeds are added: nothing of it reruns
    for name in ("prepare", "tokenize", "train", "evaluate", "teacher"):
        assert one[name] == three[name], name
    assert {k: v for k, v in three["cells"].items() if k != "seeds"} == one["cells"]
    assert three["cells"]["seeds"] == [1, 2, 3] and "seeds" not in one["cells"]
    for seed in (2, 3):
        assert three[f"seeds/{seed}/train"] == {**one["train"], "seed": seed}
        assert three[f"seeds/{seed}/evaluate"] == one["evaluate"]
        cells = three[f"seeds/{seed}/cells"]["cells"]
        assert set(cells) == set(one["cells"]["cells"])
        for cell_id, entry in cells.items():
            first = one["cells"]["cells"][cell_id]
            assert entry == ({**first, "seed": seed} if "seed" in first else first), cell_id
        # an unselected catalog seed says only that it is off, whatever else changes
        assert one[f"seeds/{seed}/train"] == one[f"seeds/{seed}/evaluate"] == {"enabled": False}
        assert one[f"seeds/{seed}/cells"] == {"enabled": False, "catalog": one["cells"]["catalog"]}
    other = resolve(_params(seeds=[1], catalog={"seeds": [2, 3]}, train={"epochs": 3}, groups=["full"]))
    assert all(other[k] == one[k] for k in one if k.startswith("seeds/"))


def test_each_extra_seed_is_one_shard_unit_its_baseline_first():
    params = _params(seeds=[1, 2, 3], catalog={"seeds": [2, 3]}, chains=["agp:10-70-1-full > qat:sym-4"])
    cells = resolve(params)["cells"]["cells"]
    cost = {"ptq": 1.0, "qat": 5.0, "agp": 5.0, "imp": 5.0}
    for n in (1, 2, 3, 4):
        shards = split(cells, cost, n, params.extra_seeds, baseline_seconds=20.0)
        flat = [t for s in shards for t in s]
        assert len(flat) == len(set(flat)) == len(cells) * 3 + len(SEED_UPSTREAM) * 2
        for seed in (2, 3):
            own = [i for i, s in enumerate(shards) if any(t.endswith(f"@{seed}") for t in s)]
            assert len(own) == 1, (n, seed)    # the seed's baseline and all its cells in one shard
            shard = shards[own[0]]
            mine = [t for t in shard if t.endswith(f"@{seed}") or t.endswith(f".seed{seed}")]
            assert mine[:len(SEED_UPSTREAM)] == [f"{s}@{seed}" for s in SEED_UPSTREAM]
            assert len(mine) == len(SEED_UPSTREAM) + len(cells)
            chain = [t for t in mine if t.startswith("seed_chain@")]
            assert mine.index(chain[0]) > mine.index(f"seed_cell@agp-10-70-1-full.seed{seed}")
    two = split(cells, cost, 2, params.extra_seeds, 20.0)
    assert sum(any(t.startswith("seed_") for t in s) for s in two) == 2   # the two seeds apart


def test_catalog_seeds_make_stages_and_a_stale_stage_list_is_refused(tmp_path):
    from tcompress.grid import check_cells_file

    params = _params(seeds=[1, 2], catalog={"seeds": [2]}, chains=["agp:10-70-1-full > qat:sym-4"])
    lists = yaml.safe_load(cells_file_text(params))
    assert lists["seed_stages"] == ["2"]
    assert set(lists["seed_cells"]) == {f"{c}.seed2" for c in lists["cells"]}
    assert lists["seed_chains"] == {f"{c}.seed2": {"cell": c, "seed": "2", "parent": v["parent"]}
                                    for c, v in lists["chain_stages"].items()}
    stale = tmp_path / "cells.yaml"
    stale.write_text(cells_file_text(_params(chains=["agp:10-70-1-full > qat:sym-4"])))
    with pytest.raises(ConfigError, match="lacks seed 2.*tcompress catalog"):
        check_cells_file(params, stale)


def test_seed_stages_run_the_first_seeds_scripts_with_the_same_code():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name in ("train", "evaluate", "teacher", "calibrate", "sensitivity", "plan"):
        first, seed = stages[name], stages[f"seed_{name}"]["do"]
        assert first["cmd"].split()[:2] == seed["cmd"].split()[:2], name
        code = [d for d in first["deps"] if d.startswith(("tcompress", "stages"))]
        assert [d for d in seed["deps"] if d.startswith(("tcompress", "stages"))] == code, name
        assert len(seed["deps"]) == len(first["deps"]), name
    for name in ("cell", "chain"):
        first, seed = stages[name]["do"], stages[f"seed_{name}"]["do"]
        flags = lambda cmd: [w for w in cmd.split() if w.startswith("--")]   # noqa: E731
        assert flags(first["cmd"]) == flags(seed["cmd"]), name
        assert len(first["deps"]) == len(seed["deps"]), name


# ---- the interval over seeds and sentences ---------------------------------------------------------

def _systems(rng, refs, rates):
    return [noisy(refs, r, rng) for r in rates]


def test_with_one_seed_the_interval_is_the_paired_bootstraps():
    rng = random.Random(1)
    refs = references(rng, 60)
    base, cell = _systems(rng, refs, (0.2, 0.35))
    one = seed_bootstrap([(base, cell)], refs, n_samples=200)
    paired = paired_bootstrap(base, {"cell": cell}, refs, n_samples=200)["cell"]
    assert (one["ci_low"], one["ci_high"]) == (paired["ci_low"], paired["ci_high"])


def test_the_interval_equals_a_direct_resampling_of_seeds_and_sentences():
    rng = random.Random(2)
    refs = references(rng, 25)
    pairs = [tuple(_systems(rng, refs, (0.2, r))) for r in (0.25, 0.4, 0.3)]   # three seeds' (reference, cell)
    n = 80
    got = seed_bootstrap(pairs, refs, n_samples=n)
    # the reference: score every resample with sacrebleu's own corpus BLEU, one replicate at a time
    sentences = np.random.default_rng(SEED).choice(len(refs), size=(n, len(refs)), replace=True)
    seeds = np.random.default_rng(SEED + 1).integers(0, len(pairs), size=(n, len(pairs)))
    means = []
    for b in range(n):
        idx = sentences[b]
        picked = [[refs[i] for i in idx]]
        deltas = []
        for k in seeds[b]:
            ref, cell = pairs[k]
            deltas.append(sacrebleu.corpus_bleu([cell[i] for i in idx], picked).score
                          - sacrebleu.corpus_bleu([ref[i] for i in idx], picked).score)
        means.append(sum(deltas) / len(deltas))
    means.sort()
    lower = n // 40
    assert got["ci_low"] == pytest.approx(means[lower], abs=1e-3)
    assert got["ci_high"] == pytest.approx(means[n - lower - 1], abs=1e-3)
    assert got["n"] == 3


def test_the_spread_between_seeds_widens_the_interval():
    rng = random.Random(3)
    refs = references(rng, 80)
    base = noisy(refs, 0.2, rng)
    same = [(base, noisy(refs, 0.3, random.Random(9)))] * 3
    spread = [(base, noisy(refs, r, random.Random(9))) for r in (0.22, 0.3, 0.45)]
    tight, wide = seed_bootstrap(same, refs, 200), seed_bootstrap(spread, refs, 200)
    assert wide["ci_high"] - wide["ci_low"] > 1.5 * (tight["ci_high"] - tight["ci_low"])


# ---- through DVC ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_more_seeds_after_one_retrain_nothing_of_the_first_and_report_mean_and_sd(tiny_pipeline, tmp_path):
    # The session's tiny project is the one-seed run; a copy of it (its git history, lock and cache
    # settings) gets a catalog seed, as a user adds one.
    project = tmp_path / "project"
    shutil.copytree(tiny_pipeline, project, symlinks=True)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["catalog"]["seeds"] = [5]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (project / "stages/cells.yaml").write_text(cells_file_text(params_from_dict(params)))   # `tcompress catalog`
    run(["git", "commit", "-qam", "a catalog seed"], project)
    first = params["seeds"][0]

    out = dvc(["exp", "run", "-S", f"seeds=[{first},5]"], project).stdout
    ran = ran_stages(out)
    first_seed = {s for s in ran if not s.startswith("seed_")}
    assert first_seed <= {"resolve", "plan", "aggregate"}, first_seed   # configs and plans unchanged: no cell
    trained = {"ptq-sym-8-ff", "ptq-sym-8-full", "qat-sym-4-full", "agp-10-70-1-full", "imp-full", "qat-control"}
    # Seed 5's stages run here, or come from the session's run-cache where test_record's runner ran them
    # first (the same stages: tests/conftest.py SHARED_SCOPES)
    assert {"seed_train@5", "seed_evaluate@5", "seed_plan@5", *(f"seed_cell@{c}.seed5" for c in trained)} \
        <= ran | restored_stages(out)
    train = [json.loads((project / p).read_text()) for p in ("metrics/train.json", "metrics/seeds/5/train.json")]
    assert train[0]["config_md5"] != train[1]["config_md5"]   # its own seed: its own training

    frame = pd.read_csv(project / "metrics/results.csv").set_index("cell")
    significance = json.loads((project / "metrics/significance.json").read_text())
    shared = json.loads((project / "metrics/cells/agp-control.json").read_text()).get("same_as", "agp-control")
    for cell in ("ptq-sym-8-full", "agp-10-70-1-full"):
        bleu = [json.loads((project / p).read_text())["bleu"]
                for p in (f"metrics/cells/{cell}.json", f"metrics/seeds/5/cells/{cell}.json")]
        if cell.startswith("agp"):   # each seed against its own control
            refs = [json.loads((project / p).read_text())["bleu"]
                    for p in (f"metrics/cells/{shared}.json", f"metrics/seeds/5/cells/{shared}.json")]
        else:                        # each seed against its own baseline, decoded the same way
            refs = [json.loads((project / p).read_text())["greedy"]["bleu"]
                    for p in ("metrics/baseline.json", "metrics/seeds/5/baseline.json")]
        row = frame.loc[cell]
        assert row["n_seeds"] == 2
        assert row["bleu_mean"] == pytest.approx(np.mean(bleu), abs=1e-4)
        assert row["bleu_sd"] == pytest.approx(np.std(bleu, ddof=1), abs=1e-4)
        assert json.loads(row["bleu_by_seed"]) == {str(first): bleu[0], "5": bleu[1]}
        assert row["delta_ref_mean"] == pytest.approx(np.mean(np.subtract(bleu, refs)), abs=1e-3)
        assert row["seeds_ci_low"] <= row["seeds_ci_high"]
        assert significance[cell]["n_seeds"] == 2
    assert "over 2 seeds" in (project / "metrics/summary.md").read_text()
    tables = (project / "metrics/tables.md").read_text()
    assert " ± " in tables and "n=2" in tables
    assert "(n=2)" in (project / "metrics/report.html").read_text()   # the summary: mean ± sd (n=2)
    assert dvc(["status"], project).stdout.strip().endswith("Data and pipelines are up to date.")
