"""From params.yaml to the files stages depend on: resolved stage configs, then one plan per cell.

Two steps, two stages:

- ``resolve`` (first in the pipeline, torch-free) validates params.yaml and writes, per stage, only
  the values that stage's result depends on, with per-corpus values resolved for the active corpus
  (``data/config/<stage>.json``). A stage depends on its file, so editing a value of a corpus not
  in use, or a ``runtime`` setting, changes no file and reruns nothing but ``resolve``.
- ``plan`` (after the baseline) writes ``data/plan/cells/<cell>.json`` for every catalog cell. A selected cell's file holds everything its computation reads: its resolved
  params, and the hashes of the baseline checkpoint, the token ids, the split it reads and the code
  it runs (its import closure, its own method's file or package and no other's; a chain's, every
  link's), and its decoding settings.
  A control's file holds its budget, not its method's other settings; a control that would train
  the same model as an earlier one holds only that one's name (``share_controls``).
  A cell stage depends on that file alone, so it reruns exactly when one of those changed, a cell switched off stays up to date
  whatever else changes (its file says only ``selected: false``), and DVC's run-cache can restore
  any cell whose file comes back. Cross-key checks that need the data (a pruning schedule longer
  than its budget) run here, before any cell.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from tcompress.chains import parse_chain
from tcompress.closure import closure, digest_files, file_digest
from tcompress.post_config import CALIBRATION_FILE, SENSITIVITY_FILE
from tcompress.deploy import DEPLOY_CODE
from tcompress.deploy import section as deploy_section
from tcompress.grid import catalog_cells, catalog_chains, selected_cells, selected_chains, table_layout
from tcompress.methods import Budget, get, registered
from tcompress.methods.base import BITS
from tcompress.schema import ConfigError, plain

REPO = Path(__file__).resolve().parents[1]
DEPLOY_MAX_BITS = 8
CELL_SCRIPT = Path("stages/cell.py")


# ------------------------------------------------------------------------------------- resolve

def deploys(method, axes: dict[str, Any], control: bool) -> bool:
    """Whether the deploy section (``tcompress.deploy``) exports this cell: integer codes (the ``bits``
    axis) of 8 bits or fewer, or a float model its method ships as CTranslate2's int8
    (``deploy_int8``); never a control."""
    if control:
        return False
    if method.deploy_int8:
        return True
    return any(a is BITS for a in method.axes) and int(axes.get("bits", DEPLOY_MAX_BITS + 1)) <= DEPLOY_MAX_BITS


def _cell_entry(params, cell) -> dict:
    method = get(cell.method)
    axis_keys = {a.key for a in method.axes}
    section = {k: v for k, v in plain(params.method_params(cell.method)).items() if k not in axis_keys}
    if cell.control:  # the budget (and what control_start reads): a schedule's edit is not the control's
        section = {k: v for k, v in section.items() if k in method.control_keys}
    entry = {"cell": cell.id, "selected": True, "method": cell.method, "axes": cell.as_dict(),
             "control": cell.control, "params": section, "seed": params.seed}
    if method.trains:  # the baseline's training settings under the method's budget
        entry["train"] = {**plain(params.train), **{k: section[k] for k in ("epochs", "lr", "warmup_steps")}}
    deploy = deploy_section(params)
    if deploy is not None and deploys(method, entry["axes"], cell.control):   # exported after its evaluation
        entry["deploy"] = deploy
    return entry


def _chain_entry(params, chain) -> dict:
    """A chain's entry: its last link's, under the chain's id, with the links and the parent it starts from."""
    return {**_cell_entry(params, chain.last), "cell": chain.id, "chain": [c.id for c in chain.links],
            "spec": chain.spec, "parent": chain.parent_id}


def share_controls(cells: dict[str, dict]) -> dict[str, dict]:
    """Controls that compute the same model are trained once. Two controls starting from the baseline
    with equal entries but for their names (the same budget, training settings and seed: QAT's and
    pruning's by default) fine-tune identically, so each later one's entry becomes ``same_as`` the
    first: its stage writes a marker, and the aggregate reads the first one's results under both names.
    It stays valid as the cells change: an entry that stops matching is planned in full again."""
    first: dict[str, str] = {}
    shared = {}
    for cell_id, entry in cells.items():
        if entry["control"] and get(entry["method"]).control_start is None:
            key = json.dumps({k: v for k, v in entry.items() if k not in ("cell", "method")}, sort_keys=True)
            if key in first:
                entry = {"cell": cell_id, "selected": True, "method": entry["method"], "control": True,
                         "same_as": first[key]}
            else:
                first[key] = cell_id
        shared[cell_id] = entry
    return shared


def resolve(params) -> dict[str, dict]:
    """Each stage's resolved config; ``cells`` holds every selected cell's entry."""
    e = params.evaluate
    decoding = {"length_penalty": e.length_penalty, "batch_sentences": e.batch_sentences,
                "max_len_a": e.max_len_a, "max_len_b": e.max_len_b}
    cells = share_controls({**{c.id: _cell_entry(params, c) for c in selected_cells(params)},
                            **{c.id: _chain_entry(params, c) for c in selected_chains(params)}})
    teacher = any(get(c["method"]).uses_teacher(c["axes"]) for c in cells.values() if not c["control"])
    calibrated = any(get(c["method"]).calibrated for c in cells.values() if not c["control"])
    sensitive = any(get(c["method"]).sensitivity for c in cells.values() if not c["control"])
    corpus = plain(getattr(params, params.data))
    if params.data == "multi30k":  # where the checksummed files come from does not change them
        corpus = {k: v for k, v in corpus.items() if k not in ("local_dir", "url")}
    configs = {
        "prepare": {"data": params.data, params.data: corpus, "cleaning": plain(params.cleaning)},
        "tokenize": {"tokenizer": plain(params.tokenizer)},
        "train": {"seed": params.seed, "model": plain(params.model), "train": plain(params.train)},
        "evaluate": {**decoding, "beam_size": e.beam_size,   # the baseline's export too, when deploy is on
                     **({"deploy": deploy_section(params)} if params.deploy.backend != "none" else {})},
        # Only what the translations depend on, so the decode reruns when those change, not the grid.
        "teacher": {"enabled": True, **plain(params.teacher)} if teacher else {"enabled": False},
        # Not the grid's values: a changed bit width recomputes no statistics.
        "calibrate": {"enabled": True, **plain(params.calibration), "seed": params.seed} if calibrated
                     else {"enabled": False},
        "sensitivity": {"enabled": True, **plain(params.sensitivity)} if sensitive else {"enabled": False},
        "cells": {"catalog": [c.id for c in catalog_cells(params)] + [c.id for c in catalog_chains(params)],
                  "cells": cells,
                  "evaluate": {**decoding, "beam_size": e.cell_beam_size},
                  "batch_tokens": params.train.batch_tokens, "seed": params.seed,
                  "layout": table_layout(params)},
    }
    if params.extra_seeds:   # the aggregate's cue to read every seed's results (one seed: as before)
        configs["cells"]["seeds"] = list(params.seeds)
    return {**configs, **seed_configs(params, configs)}


SEED_STAGES = ("train", "evaluate", "teacher", "calibrate", "sensitivity", "cells")


def seed_configs(params, configs: dict[str, dict]) -> dict[str, dict]:
    """``seeds/<seed>/<stage>``: the configs of the stages dvc.yaml has for each catalog seed besides
    the first. A selected seed's are the first seed's with its own seed (so its baseline, training
    subsets and dropout differ, and nothing else); an unselected one's say only ``enabled: false``
    (its cells: off), so they stay unchanged, and their stages up to date, whatever else changes."""
    out = {}
    for seed in params.seed_catalog:
        name = {stage: f"seeds/{seed}/{stage}" for stage in SEED_STAGES}
        if seed in params.extra_seeds:
            cells = {cell_id: {**entry, "seed": seed} if "seed" in entry else entry
                     for cell_id, entry in configs["cells"]["cells"].items()}
            out.update({name[stage]: {**configs[stage], "seed": seed} if "seed" in configs[stage] else configs[stage]
                        for stage in SEED_STAGES})
            out[name["cells"]] = {**configs["cells"], "cells": cells, "seed": seed}
        else:
            off = {"enabled": False}
            out.update({name[stage]: off for stage in SEED_STAGES})
            out[name["cells"]] = {**off, "catalog": configs["cells"]["catalog"]}
    return out


def write_json(path: str | Path, obj: Any) -> None:
    """Keys sorted, so equal content is an equal file (and an equal DVC hash)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------- plan

def training_subset(n: int, k: int, seed: int) -> list[int] | None:
    """The seeded subset of ``k`` of ``n`` training pairs a trained cell fine-tunes on (None: all)."""
    return sorted(random.Random(seed).sample(range(n), k)) if k and k < n else None


def _method_files(method, root: Path) -> set[Path]:
    """A method's own code: its file, or every file of its package (``tcompress/methods/<name>/``)."""
    parts = method.compress.__module__.split(".")
    package = Path(*parts[:3])
    if parts[:2] == ["tcompress", "methods"] and (root / package / "__init__.py").is_file():
        return {p.relative_to(root) for p in (root / package).rglob("*.py")}
    return {Path(*parts).with_suffix(".py")}


def code_digest(methods: str | tuple[str, ...], script: Path, root: Path = REPO, deploy: bool = False) -> str:
    """Hash of the code a cell stage runs: the script's closure with its method's file or package, no
    other method's. A chain names every link's method: it loads its parent's stored forms and runs them.
    The export's code (``deploy.DEPLOY_CODE``) counts only for a cell the deploy section exports."""
    names = (methods,) if isinstance(methods, str) else methods
    own = set().union(*(_method_files(get(name), root) for name in names))
    others = set().union(*(_method_files(m, root) for m in registered())) - own
    if not deploy:
        others |= {Path(f) for f in DEPLOY_CODE}
    files = closure([root / script], root, exclude=others)
    files = sorted(set(files) | set(closure([root / f for f in sorted(own)], root, exclude=others)) | own | {script})
    return digest_files(files, root)


def _dir_digest(directory: Path) -> str:
    return digest_files([p.relative_to(directory) for p in directory.rglob("*") if p.is_file()], directory)


def _budget(tokenized: Path, batch_tokens: int, seed: int) -> Budget:
    import pyarrow.parquet as pq

    from tcompress.batching import make_batches

    table = pq.read_table(tokenized / "train.ids.parquet", columns=["src_ids", "tgt_ids"])
    src_lens = [len(s) for s in table.column("src_ids").to_pylist()]
    tgt_lens = [len(t) for t in table.column("tgt_ids").to_pylist()]

    def steps_per_epoch(section) -> int:
        keep = training_subset(len(src_lens), section.train_sentences, seed)
        s, t = (src_lens, tgt_lens) if keep is None else ([src_lens[i] for i in keep], [tgt_lens[i] for i in keep])
        return len(make_batches(s, t, batch_tokens, 0))
    return Budget(steps_per_epoch)


def write_plan(config: dict, baseline: Path, tokenized: Path, valid: Path, test: Path, out: Path,
               root: Path = REPO, teacher: Path | None = None, calibration: Path | None = None,
               sensitivity: Path | None = None) -> list[str]:
    """Every catalog cell's plan; returns the selected cells' ids. A cell that trains on the teacher's
    translations also holds their hash (``teacher``: the teacher stage's output); a cell of a
    ``calibrated`` method the hash of the calibration statistics and their file's path
    (``calibration``: the calibrate stage's output); a cell of a ``sensitivity`` method that of the
    per-Linear sensitivities and their path (``sensitivity``: the sensitivity stage's output)."""
    from tcompress.schema import build

    if not config.get("enabled", True):   # a catalog seed not selected: every cell of it off
        for cell_id in config["catalog"]:
            write_json(out / "cells" / f"{cell_id}.json", {"cell": cell_id, "selected": False})
        return []
    inputs = {"baseline": file_digest(baseline), "tokenized": _dir_digest(tokenized)}
    budget = None
    for entry in config["cells"].values():
        method = get(entry["method"])
        if method.check is not None and not entry["control"]:
            budget = budget or _budget(tokenized, config["batch_tokens"], entry["seed"])
            axes = {a.key: [entry["axes"][a.name]] for a in method.axes}
            method.check(build(method.params, {**entry["params"], **axes}, method.name), budget)
    inputs["test"], inputs["valid"] = file_digest(test), file_digest(valid)
    digests: dict[tuple[str, ...], str] = {}
    for cell_id in config["catalog"]:
        entry = config["cells"].get(cell_id)
        if entry is None or "same_as" in entry:   # off, or trained by another control: no inputs read
            write_json(out / "cells" / f"{cell_id}.json", entry or {"cell": cell_id, "selected": False})
            continue
        name = entry["method"]
        # A chain runs every link's code: it loads its parent's stored forms and computes with them.
        code = tuple(dict.fromkeys(c.method for c in parse_chain(entry["spec"]).links)) if "spec" in entry else (name,)
        key = (code, "deploy" in entry)
        if key not in digests:
            digests[key] = code_digest(code, CELL_SCRIPT, root, deploy="deploy" in entry)
        cell_inputs = inputs
        if not entry["control"] and get(name).uses_teacher(entry["axes"]):
            if teacher is None or not (teacher / "train.ids.parquet").exists():
                raise ConfigError(f"cell {cell_id} trains on the teacher's translations, but {teacher} holds "
                                  "none; run `dvc repro` (the teacher stage decodes them)")
            cell_inputs = {**inputs, "teacher": file_digest(teacher / "train.ids.parquet")}
        if not entry["control"] and get(name).calibrated:
            stats = None if calibration is None else calibration / CALIBRATION_FILE
            if stats is None or not stats.exists():
                raise ConfigError(f"cell {cell_id} reads calibration statistics, but {calibration} holds none; "
                                  "run `dvc repro` (the calibrate stage computes them)")
            cell_inputs = {**cell_inputs, "calibration": file_digest(stats)}
            entry = {**entry, "calibration_file": str(stats)}
        if not entry["control"] and get(name).sensitivity:
            found = None if sensitivity is None else sensitivity / SENSITIVITY_FILE
            if found is None or not found.exists() or not json.loads(found.read_text()).get("enabled"):
                raise ConfigError(f"cell {cell_id} reads per-Linear sensitivities, but {sensitivity} holds none; "
                                  "run `dvc repro` (the sensitivity stage measures them)")
            cell_inputs = {**cell_inputs, "sensitivity": file_digest(found)}
            entry = {**entry, "sensitivity_file": str(found)}
        write_json(out / "cells" / f"{cell_id}.json",
                   {**entry, "evaluate": config["evaluate"], "inputs": cell_inputs, "code": digests[key]})
    return list(config["cells"])


def verify_inputs(entry: dict, paths: dict[str, Path]) -> None:
    """Refuse to compute a cell from inputs other than those its plan was written for."""
    for key, path in paths.items():
        expected = entry["inputs"].get(key)
        actual = _dir_digest(path) if path.is_dir() else file_digest(path)
        if expected is not None and actual != expected:
            raise ConfigError(f"{path} changed after the plan was written ({key}); run `dvc repro` so the plan "
                              "stage sees it")


def read_plan(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())

