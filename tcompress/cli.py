"""``tcompress``: commands for users outside the DVC stages.

``tcompress translate`` scores any checkpoint on any test set (the user's own, not only the
pipeline's), with the same decoding and sacrebleu scoring the evaluate stage uses;
``tcompress catalog`` rewrites the stage list dvc.yaml expands; ``tcompress groups`` counts the
parameters of each layer group; ``tcompress docs`` regenerates docs/methods.md from the registry;
``tcompress plan`` previews what a change would run; ``tcompress shard`` splits the selected cells
between workers, and ``tcompress push`` sends what one computed to the team's remote;
``tcompress pairwise``, ``compare-thesis`` and ``run-stages`` compare two sets of
translations, print the thesis's tables beside ours, and run dvc.yaml's commands without DVC;
``tcompress export`` writes a model file as a CTranslate2 model, which ``translate --backend
ctranslate2`` decodes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import yaml

from tcompress.data.corpora import CorpusError, read_text_lines
from tcompress.grid import CELLS_FILE, cells_file_text
from tcompress.methods_doc import METHODS_PAGE
from tcompress.schema import UserError
from tcompress.stage import configure_logging

# Modules that import torch (about 2 s) are imported inside the commands that run a model
# (translate, groups, export), so catalog, plan, shard, push, docs, run-stages and --help start without it.


@click.group()
@click.option("-v", "--verbose", count=True, help="more messages")
@click.option("-q", "--quiet", count=True, help="warnings and errors only")
def main(verbose: int, quiet: int) -> None:
    """Train, compress and measure Transformer translation models (see README.md)."""
    configure_logging(verbose - quiet)


@main.command("translate")
@click.option("--checkpoint", default="data/model/model.pt", show_default=True, type=click.Path(dir_okay=False))
@click.option("--tokenizer", "tokenizer_dir", default="data/tokenized", show_default=True,
              type=click.Path(file_okay=False))
@click.option("--backend", type=click.Choice(["pytorch", "ctranslate2"]), default="pytorch", show_default=True,
              help="ctranslate2: decode a `tcompress export --format ctranslate2` folder (--model) with CTranslate2")
@click.option("--model", "export_dir", type=click.Path(file_okay=False),
              help="with --backend ctranslate2: the export folder (it holds its tokenizer)")
@click.option("--src", "src_file", required=True, type=click.Path(dir_okay=False),
              help="one sentence a line; plain or .gz")
@click.option("--ref", "ref_file", type=click.Path(dir_okay=False), help="references to score against; plain or .gz")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="write translations here (default: stdout)")
@click.option("--beam-size", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--length-penalty", default=0.6, show_default=True, type=click.FloatRange(min=0.0))
@click.option("--batch-sentences", default=128, show_default=True, type=click.IntRange(min=1))
@click.option("--device", default="cpu", show_default=True)
@click.option("--int8", "int8", is_flag=True,
              help="integer matmuls for every quantized Linear, from the cell artifact's codes (8 bits or fewer)")
@click.option("--int8-activation-bits", "activation_bits", type=click.Choice(["auto", "8", "7"]), default="auto",
              show_default=True, help="width of the per-row activation codes with --int8; auto: 8 where the CPU "
              "has VNNI, 7 where it has only AVX2 (8-bit codes would saturate fbgemm's 16-bit sums there; a "
              "cell's bleu_int8 is always the 8-bit one)")
def translate_cmd(checkpoint: str, tokenizer_dir: str, backend: str, export_dir: str | None, src_file: str,
                  ref_file: str | None, out_file: str | None, beam_size: int, length_penalty: float,
                  batch_sentences: int, device: str, int8: bool, activation_bits: str) -> None:
    """Translate SRC with CHECKPOINT; with --ref, print BLEU and chrF as JSON on stderr.

    A cell's metrics are greedy (--beam-size 1, the thesis's decoding, evaluate.cell_beam_size).
    An empty source line is translated to an empty line (and counted); --out is written whole or
    not at all. --backend ctranslate2 decodes an export folder instead (docs/deployment.md): its
    greedy output is ours token for token where the logits' argmax is; its beam search is its own."""
    from tcompress.checkpoint import CheckpointError
    from tcompress.decode import DecodeOptions

    opts = DecodeOptions(beam_size=beam_size, length_penalty=length_penalty, batch_sentences=batch_sentences)
    try:  # every input checked before the model loads: a bad file costs nothing
        if activation_bits != "auto" and not int8:
            raise click.UsageError("--int8-activation-bits applies to --int8 decoding; add --int8")
        _check_backend_options(backend, export_dir, int8)
        if backend == "pytorch" and not Path(tokenizer_dir).is_dir():
            raise click.ClickException(f"{tokenizer_dir}: no such folder (--tokenizer)")
        sources = read_text_lines(src_file)
        refs = read_text_lines(ref_file) if ref_file else None
        if refs is not None and len(refs) != len(sources):
            raise click.ClickException(f"--src has {len(sources)} lines but --ref has {len(refs)}; "
                                       "they must be line-aligned")
        if backend == "ctranslate2":
            from tcompress import translate_ct2

            export = translate_ct2.open_export(export_dir, device)
            facts = {"backend": "ctranslate2", "compute_type": export.compute_type, "exact": export.manifest["exact"]}
            decode = lambda lines: translate_ct2.translate(export, lines, opts)  # noqa: E731
        else:
            from tcompress.compress.int8_inference import to_int8_inference
            from tcompress.decode import translate
            from tcompress.loader import load_model  # a baseline or a compressed cell
            from tcompress.tokenizer import Tokenizer

            model, _ = load_model(checkpoint, device)
            bits = None if activation_bits == "auto" else int(activation_bits)
            facts = to_int8_inference(model, device=device, activation_bits=bits) if int8 else {}
            tokenizer = Tokenizer.load(tokenizer_dir)
            decode = lambda lines: translate(model, tokenizer, lines, opts, device, progress=True)  # noqa: E731
    except (CheckpointError, CorpusError, UserError) as err:
        raise click.ClickException(str(err)) from None
    filled = [i for i, s in enumerate(sources) if s.strip()]
    hyps = [""] * len(sources)
    try:
        translated, speed = decode([sources[i] for i in filled])
    except UserError as err:
        raise click.ClickException(str(err)) from None
    for i, hyp in zip(filled, translated):
        hyps[i] = hyp
    text = "\n".join(hyps) + "\n"
    if out_file:
        tmp = Path(out_file).with_name(Path(out_file).name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out_file)
    else:
        sys.stdout.write(text)
    if refs is not None:
        from tcompress.evaluation import score

        result = {**score(hyps, refs), "sentences": len(sources), "empty_source_lines": len(sources) - len(filled),
                  "sentences_per_second": round(speed, 2),
                  "decoding": "greedy" if beam_size == 1 else f"beam{beam_size}", "length_penalty": length_penalty,
                  **facts}
        click.echo(json.dumps(result, indent=2), err=True)


def _check_backend_options(backend: str, export_dir: str | None, int8: bool) -> None:
    """Refuse options that belong to the other backend, in one line."""
    ctx = click.get_current_context()
    given = {name for name in ("checkpoint", "tokenizer_dir")
             if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    if backend == "ctranslate2":
        if not export_dir:
            raise click.UsageError("--backend ctranslate2 needs --model, a folder `tcompress export --format "
                                   "ctranslate2` wrote")
        if given or int8:
            options = [{"checkpoint": "--checkpoint", "tokenizer_dir": "--tokenizer"}[n] for n in sorted(given)]
            raise click.UsageError(f"{', '.join(options + (['--int8'] if int8 else []))}: for --backend pytorch; "
                                   "an export folder holds its model, tokenizer and compute type")
    elif export_dir:
        raise click.UsageError("--model is the export folder of --backend ctranslate2; --backend pytorch reads "
                               "--checkpoint")


@main.command("catalog")
@click.option("--params", "params_file", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--out", "out_file", default=str(CELLS_FILE), show_default=True, type=click.Path(dir_okay=False))
@click.option("--lock", "lock_file", default="dvc.lock", show_default=True, type=click.Path(dir_okay=False),
              help="the lock file whose entries of stages no longer in dvc.yaml (beside it) are dropped")
def catalog_cmd(params_file: str, out_file: str, lock_file: str) -> None:
    """Rewrite the stage list dvc.yaml expands (every catalog cell of every registered method).

    Run it after adding a method file or changing params.yaml's catalog. dvc.lock's entries of the
    stages it removes are dropped: DVC keeps them, and rewrites the whole lock after every stage it
    runs or restores, so a lock holding every cell a catalog ever had slows every `dvc repro`."""
    from tcompress.grid import stage_names
    from tcompress.params import ConfigError, load_params

    try:
        params = load_params(params_file)
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    text = cells_file_text(params)
    changed = not Path(out_file).exists() or Path(out_file).read_text() != text
    Path(out_file).write_text(text)
    lists = yaml.safe_load(text)
    click.echo(f"{out_file}: {len(lists['cells'])} catalog cells, {len(lists['chain_stages'])} chains"
               + ("" if changed else " (unchanged)"))
    lock, dvc_yaml = Path(lock_file), Path(lock_file).parent / "dvc.yaml"
    if lock.exists() and dvc_yaml.exists():
        names = stage_names(yaml.safe_load(dvc_yaml.read_text()), lists)
        stale = [n for n in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}) if n not in names]
        if stale:
            from dvc.utils.serialize import modify_yaml   # DVC's own writer: the lock keeps its format

            with modify_yaml(lock) as data:
                for name in stale:
                    del data["stages"][name]
            click.echo(f"{lock}: dropped the entries of {len(stale)} stages dvc.yaml no longer has")


@main.command("plan")
@click.option("-S", "--set-param", "overrides", multiple=True, help="as `dvc exp run -S`, e.g. -S bits=4")
def plan_cmd(overrides: tuple[str, ...]) -> None:
    """List the cells a change selects, which are already computed, and the estimated time of the rest."""
    from tcompress.params import ConfigError
    from tcompress.preview import preview

    try:
        rows = preview(list(overrides))
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    except Exception as err:  # DVC's own refusal of an override
        raise click.ClickException(f"{err}: {err.__cause__}" if err.__cause__ else str(err)) from None
    todo = [r for r in rows if not r["unchanged"]]
    for r in rows:
        state = "planned before (restored, not recomputed)" if r["unchanged"] else \
            "new or changed" + (f", ~{r['seconds']:.0f} s" if r["seconds"] is not None else ", no measured cost yet")
        shared = f"; the model {r['same_as']} trains (the same budget)" if r["same_as"] else ""
        click.echo(f"{r['cell']:32} {state}{shared}")
    known = [r["seconds"] for r in todo if r["seconds"] is not None]
    click.echo(f"{len(rows)} cells selected, {len(todo)} to compute"
               + (f", about {sum(known) / 60:.1f} min for the {len(known)} with a measured cost" if known else "")
               + " (plus the baseline, if its settings changed)")


@main.command("docs")
@click.option("--out", "out_file", default=str(METHODS_PAGE), show_default=True, type=click.Path(dir_okay=False))
def docs_cmd(out_file: str) -> None:
    """Rewrite the methods page from each registered method's docstring, axes and params.

    Run it after adding a method or editing a method's docstring, axes or params; a test fails
    while the committed page is stale."""
    from tcompress.methods import registered
    from tcompress.methods_doc import write

    changed = write(out_file)
    click.echo(f"{out_file}: {len(registered())} methods" + ("" if changed else " (unchanged)"))


@main.command("groups")
@click.option("--checkpoint", default="data/model/model.pt", show_default=True, type=click.Path(exists=True, dir_okay=False))
def groups_cmd(checkpoint: str) -> None:
    """Parameter count of each layer group of a checkpoint (the n_c of the compression ratio)."""
    from tcompress.layer_groups import group_report
    from tcompress.loader import load_model

    model, _ = load_model(checkpoint)
    click.echo(json.dumps(group_report(model), indent=2))


@main.command("shard")
@click.option("--of", "count", required=True, type=click.IntRange(min=1), help="how many workers share the grid")
@click.option("--index", required=True, type=click.IntRange(min=0), help="this worker's shard, 0 to N-1")
@click.option("--params", "params_file", default="params.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--measured", "metrics_dir", default="metrics/cells", show_default=True,
              type=click.Path(file_okay=False),
              help="cells' metrics, as the last commit holds them (the workspace's outside git): the cost per method")
@click.option("--check/--no-check", default=True, show_default=True,
              help="refuse while the shared upstream stages are not up to date")
@click.option("--seeds-upstream", is_flag=True,
              help="the other seeds' baselines have run too (dvc repro seed_plan@S): split their cells across "
                   "the shards like the first seed's, instead of giving each seed to one shard")
def shard_cmd(count: int, index: int, params_file: str, metrics_dir: str, check: bool, seeds_upstream: bool) -> None:
    """Print the `dvc repro` targets of shard INDEX of COUNT: the selected cells and chains, balanced
    by estimated cost, each chain after the cell it starts from, the baseline's evaluation, and the
    catalog's off cells, chains and seeds (markers, about a second each), so that the collector
    computes nothing but the aggregate.

    The shared stages (prepare, tokenize, train, teacher, plan) run once first: `dvc repro plan`.
    Then each worker: dvc repro $(tcompress shard --of N --index I); a last `dvc repro` restores
    every cell from the run-cache."""
    from tcompress.grid import catalog_cells, catalog_chains
    from tcompress.params import ConfigError, load_params
    from tcompress.plan import resolve
    from tcompress.preview import measured_seconds, seconds_by_method
    from tcompress.shard import SEED_SHARED, UPSTREAM, committed_metrics, evaluate_estimate, shards

    if index >= count:
        raise click.ClickException(f"--index {index} is not a shard of {count} (0 to {count - 1})")
    try:
        params = load_params(params_file)
        cells = resolve(params)["cells"]["cells"]
        # The catalog's stages that are off: markers the workers write and push, so the collector restores them
        off = {c.id: {} for c in catalog_cells(params) if c.id not in cells}
        off |= {c.id: {"parent": c.parent_id} for c in catalog_chains(params) if c.id not in cells}
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    seeds = params.extra_seeds
    if check:
        from dvc.repo import Repo

        upstream = [*UPSTREAM, *(f"{stage}@{seed}" for seed in seeds if seeds_upstream for stage in SEED_SHARED)]
        with Repo(".") as repo:
            stale = [name for name in upstream if repo.status(targets=[name])]
        if stale:
            first = " ".join(["plan", *(f"seed_plan@{seed}" for seed in seeds if seeds_upstream)])
            raise click.ClickException(f"the shared stages must be up to date before any shard runs ({', '.join(stale)} "
                                       f"not): run `dvc repro {first}` once, then the shards")
    committed = committed_metrics(Path(metrics_dir))   # not the workspace's: this worker's own cells change it
    cost = seconds_by_method(committed) if committed is not None else measured_seconds(Path(metrics_dir))
    train = Path(metrics_dir).parent / "train.json"   # the first seed's baseline: another seed's estimate
    baseline_seconds = json.loads(train.read_text()).get("wall_seconds") if train.exists() else None
    off_seeds = tuple(s for s in params.seed_catalog if s not in seeds)
    baseline = Path(metrics_dir).parent / "baseline.json"
    evaluate = evaluate_estimate(json.loads(baseline.read_text()) if baseline.exists() else {})
    mine = shards(cells, cost, count, seeds, baseline_seconds, off, off_seeds, evaluate, seeds_upstream)[index]
    how = "their cells split across the shards" if seeds_upstream else "each in one shard"
    click.echo(f"shard {index} of {count}: {len(mine.targets)} stages ({mine.off} of them off: markers, no torch), "
               f"about {mine.seconds / 60:.1f} min "
               f"(measured costs per method{f'; {len(seeds)} more seeds, {how}' if seeds else ''})",
               err=True)
    click.echo(" ".join(mine.targets))


@main.command("push")
@click.option("-r", "--remote", default=None, help="the DVC remote (default: the project's default remote)")
@click.option("-j", "--jobs", default=None, type=click.IntRange(min=1), help="parallel transfers (DVC's default)")
def push_cmd(remote: str | None, jobs: int | None) -> None:
    """`dvc push --run-cache`, and the run-cache entries' outputs it leaves out (``cache: false``:
    the metrics files), so that `dvc repro --pull` elsewhere restores every stage run here. Each
    worker runs it after its shard."""
    from tcompress.push import push

    entries, sent, failed = push(remote, jobs)
    click.echo(f"{entries} run-cache entries complete here; {sent} of their objects sent besides DVC's push"
               + (f", {failed} failed" if failed else ""), err=True)
    if failed:
        sys.exit(1)


# ---- Tools for a grid's results and for machines without DVC ------------------------------------

@main.command("pairwise")
@click.option("--cells", required=True, type=click.Path(exists=True, file_okay=False),
              help="a folder of cell folders, each holding its hyps.txt (data/cells)")
@click.option("--test", "test_split", required=True, type=click.Path(exists=True, dir_okay=False),
              help="the test split the cells decoded (data/prepared/test.parquet)")
@click.option("--out", type=click.Path(dir_okay=False), help="also write the pairs, with this command, as JSON")
@click.argument("pairs", nargs=-1, required=True)
def pairwise_cmd(cells: str, test_split: str, out: str | None, pairs: tuple[str, ...]) -> None:
    """Paired bootstrap of two cells' translations for each PAIR, written CELL_A:CELL_B: B's BLEU
    minus A's, its 95 % interval and p-value (the grid's own test), for comparisons its tables do
    not make."""
    from tcompress.compare import pairwise, parse_pair

    try:
        rows = pairwise(Path(cells), Path(test_split), [parse_pair(p) for p in pairs])
    except (CorpusError, UserError) as err:
        raise click.ClickException(str(err)) from None
    for r in rows:
        click.echo(f"{r['b']} − {r['a']}: {r['delta']:+.2f} BLEU, 95 % CI [{r['ci_low']:+.2f}, "
                   f"{r['ci_high']:+.2f}], p = {r['p_value']:.4f}")
    if out:
        command = f"tcompress pairwise --cells {cells} --test {test_split} " + " ".join(pairs)
        Path(out).write_text(json.dumps({"command": command, "pairs": rows}, indent=2) + "\n")


@main.command("compare-thesis")
@click.option("--results", default="metrics/results.csv", show_default=True,
              type=click.Path(exists=True, dir_okay=False), help="the aggregate stage's results table")
@click.option("--method", type=click.Choice(["ptq", "qat", "agp"]), default="ptq", show_default=True,
              help="ptq: Table 4.1, qat: Table 4.5, agp: Table 4.3")
def compare_thesis_cmd(results: str, method: str) -> None:
    """A grid beside the thesis's table as Markdown: each cell's ΔBLEU, ours / the thesis's (each
    against its own greedy baseline), and both compression ratios."""
    from tcompress.compare import thesis_table

    try:
        click.echo(thesis_table(Path(results), method))
    except UserError as err:
        raise click.ClickException(str(err)) from None


@main.command("run-stages")
@click.option("-S", "--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="edit params.yaml before running (the value is parsed as YAML)")
@click.option("--dry-run", is_flag=True, help="print the commands without running them")
@click.argument("stages", nargs=-1, required=True)
def run_stages_cmd(overrides: tuple[str, ...], dry_run: bool, stages: tuple[str, ...]) -> None:
    """Run dvc.yaml's commands for STAGES (`cell@<cell>` for a grid cell) in order, without DVC:
    nothing cached or skipped, the first failure stops the run. -S rewrites params.yaml (without
    its comments): run it in a copy of the repository."""
    from tcompress import without_dvc

    found = without_dvc.commands(stages)
    without_dvc.edit_params(Path("params.yaml"), overrides, write=not dry_run)
    if dry_run:
        for name, cmd in found:
            click.echo(f"[{name}] {cmd}", err=True)
        return
    sys.exit(without_dvc.run(found, lambda line: click.echo(line, err=True)))


# ---- Deployment: a model file as another runtime's model ----------------------------------------

@main.command("export")
@click.option("--format", "fmt", required=True, type=click.Choice(["ctranslate2"]),
              help="the runtime to export to")
@click.option("--tokenizer", "tokenizer_dir", default="data/tokenized", show_default=True,
              type=click.Path(file_okay=False), help="the tokenizer the model was trained with; copied into OUT_DIR")
@click.option("--int8", "int8", is_flag=True,
              help="int8 weights, the cell's own codes where they fit, run as int8_float32 (default: float32)")
@click.option("--force", is_flag=True, help="replace OUT_DIR if it exists")
@click.option("--vmap", is_flag=True, help="add a vocabulary shortlist built from the training pairs in --tokenizer "
              "(its train.ids.parquet): each step scores only the candidates of the batch's source pieces; faster "
              "at small batches, and the output can differ")
@click.option("--vmap-per-source", default=100, show_default=True, type=click.IntRange(min=0),
              help="candidates per source piece (the target pieces that co-occur with it most)")
@click.option("--vmap-frequent", default=1000, show_default=True, type=click.IntRange(min=0),
              help="the most frequent target pieces, always candidates")
@click.argument("model_file", type=click.Path(dir_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
def export_cmd(fmt: str, tokenizer_dir: str, int8: bool, force: bool, vmap: bool, vmap_per_source: int,
               vmap_frequent: int, model_file: str, out_dir: str) -> None:
    """Write MODEL_FILE (a baseline checkpoint or a cell's artifact) as a CTranslate2 model in OUT_DIR,
    with its tokenizer and a manifest.json that says what differs from MODEL_FILE (also summed up in
    one line on stderr). `tcompress translate --backend ctranslate2 --model OUT_DIR` decodes it."""
    from tcompress.export_ct2 import export, summary
    from tcompress.loader import load_model
    from tcompress.translate_ct2 import require_ctranslate2

    try:
        require_ctranslate2()   # before loading the model: one line saying how to install it
        if not Path(tokenizer_dir).is_dir():
            raise UserError(f"{tokenizer_dir}: no such folder (--tokenizer)")
        if Path(out_dir).exists() and not force:   # before loading the model
            raise UserError(f"{out_dir} exists; pass --force to replace it")
        manifest = export(load_model(model_file), model_file, tokenizer_dir, out_dir, int8=int8, force=force,
                          shortlist=(vmap_per_source, vmap_frequent) if vmap else None)
    except UserError as err:   # CheckpointError included
        raise click.ClickException(str(err)) from None
    click.echo(summary(manifest, out_dir), err=True)


if __name__ == "__main__":
    main()
