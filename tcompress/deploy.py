"""Deployment measured per cell: params.yaml's ``deploy`` section, which cells it exports, and the export.

With ``deploy.backend: ctranslate2`` the cell stage exports each deploying cell (below)
after its evaluation (``tcompress export --format ctranslate2 --int8``, into ``ct2/`` in the
cell's folder) and decodes the test split with that export as ``translate --backend ctranslate2``
does; the evaluate stage does the same with the float32 baseline, for the comparison. The cell's
metrics then hold what a user who ships the export gets: ``bleu_deployed``,
``sentences_per_second_deployed``, ``deployed_bytes`` (every file of the export folder), what the
export changed (the manifest's ``exact`` and ``differences``; with ``deploy.vmap`` every export holds a
vocabulary shortlist, ``tcompress.vocabulary_map``) and how it ran on this CPU
(``tcompress.translate_ct2.cpu_settings``: compute type, GEMM backend, threads, CPU flags).

Which cells (``tcompress.plan.deploys``): those whose method has the integer codes' ``bits`` axis at
8 or fewer, and those whose method ships a float model that CTranslate2 quantizes to int8 at export
(``Method.deploy_int8``: distilled students; the manifest names their weights "float weights
quantized"); controls left out. ``tcompress.plan`` writes the resolved section into exactly those
cells' plan files (and the evaluate stage's config), so turning it on reruns them and the baseline's
evaluation, and with it off every file is what it was without the section.

The section is torch-free (``resolve`` reads it); the export imports torch and CTranslate2 only when
it runs. Nothing here loads a model file: the caller passes the model it loaded (the evaluate stage
the float baseline, a cell stage its artifact), so the baseline's evaluation does not depend on any
method's code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEPLOY_DIR = "ct2"                      # the export folder, in the cell's (or the baseline's) output folder
HYPS_FILE = "hyps_deployed.txt"         # the export's translations, beside it
# Code only a deploying cell runs: the plan hashes it into those cells' plans alone (tcompress.plan).
DEPLOY_CODE = ("tcompress/deploy.py", "tcompress/export_ct2.py", "tcompress/translate_ct2.py")


def section(params) -> dict[str, Any] | None:
    """The resolved ``deploy`` section (its beam size filled in), or None when it is off."""
    d = params.deploy
    if d.backend == "none":
        return None
    return {"backend": d.backend, "compute_type": d.compute_type, "threads": d.threads,
            "beam_size": d.beam_size if d.beam_size is not None else params.evaluate.cell_beam_size,
            **({"vmap": [d.vmap_per_source, d.vmap_frequent]} if d.vmap else {})}


def check_installed(config: dict[str, Any] | None) -> None:
    """Before a stage computes anything: with deploy on and no CTranslate2, stop with the one line
    saying how to install it."""
    if config:
        from tcompress.translate_ct2 import require_ctranslate2

        require_ctranslate2()


def directory_bytes(directory: str | Path) -> int:
    """The bytes of every file under ``directory``: what a user ships."""
    return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())


def deploy(loaded, model_file: str | Path, tokenized: str | Path, out_dir: str | Path, config: dict[str, Any],
           sources: list[str], references: list[str], opts, int8: bool) -> dict[str, Any]:
    """Export the model ``loaded`` from ``model_file`` (a (model, payload) pair) into
    ``out_dir/ct2`` (int8 codes, or float32 for the baseline), decode ``sources`` with it under
    ``opts`` (beam size: the section's) and return the flat metrics."""
    from dataclasses import replace

    from tcompress.evaluation import score
    from tcompress.export_ct2 import export
    from tcompress.translate_ct2 import open_export, translate

    folder = Path(out_dir) / DEPLOY_DIR
    shortlist = tuple(config["vmap"]) if config.get("vmap") else None
    manifest = export(loaded, model_file, tokenized, folder, int8=int8, force=True, shortlist=shortlist)
    exported = open_export(folder, "cpu", config["compute_type"] if int8 else "auto", config["threads"])
    hyps, speed = translate(exported, sources, replace(opts, beam_size=config["beam_size"]))
    (Path(out_dir) / HYPS_FILE).write_text("\n".join(hyps) + "\n")
    scored = score(hyps, references)
    return {"bleu_deployed": scored["bleu"], "chrf_deployed": scored["chrf"],
            "sentences_per_second_deployed": round(speed, 2), "deployed_bytes": directory_bytes(folder),
            "deployed_backend": config["backend"], "deployed_weights": manifest["weights"],
            "deployed_decoding": "greedy" if config["beam_size"] == 1 else f"beam{config['beam_size']}",
            "deployed_exact": manifest["exact"],
            "deployed_differences": "; ".join(d["label"] for d in manifest["differences"]) or "none",
            **{f"deployed_{k}": v for k, v in exported.settings.items()}}


def deploy_cell(entry: dict[str, Any], loaded, artifact: Path, tokenized: str | Path,
                test_split: str | Path) -> dict[str, Any]:
    """A cell's ``artifact`` (``loaded``: the loader's pair) exported as int8 (its codes, or a float
    model's weights by CTranslate2's rule) into its folder and decoded as the cell was evaluated (the
    section's beam size): the metrics the cell stage adds."""
    from tcompress.data.corpora import read_split
    from tcompress.decode import DecodeOptions

    e = entry["evaluate"]
    sources, references = read_split(test_split)
    opts = DecodeOptions(e["beam_size"], e["length_penalty"], e["batch_sentences"], e["max_len_a"], e["max_len_b"])
    return deploy(loaded, artifact, tokenized, Path(artifact).parent, entry["deploy"], sources, references, opts,
                  int8=True)
