"""End to end: the real `dvc repro` on the tiny configuration in a temporary git repository."""

import json
import subprocess
import sys

import pytest
import yaml

from click.testing import CliRunner

from conftest import REPO, dvc, make_project, ran_stages, run, tiny_params

from tcompress.cli import main
from tcompress.compress.int8_inference import fastest_activation_bits, fbgemm_static_available

pytestmark = pytest.mark.slow


def translate_here(project, monkeypatch, *args):
    """`tcompress translate ARGS` in ``project``, in this process (click's runner): a fresh
    interpreter would spend two seconds importing torch. The first translate test below runs the
    command in its own process, as a user does."""
    monkeypatch.chdir(project)
    return CliRunner().invoke(main, ["translate", *args])


def test_repro_produces_every_output(tiny_pipeline):
    metrics = json.loads((tiny_pipeline / "metrics/baseline.json").read_text())
    for key in ("bleu", "chrf", "signature", "parameters", "checkpoint_bytes", "greedy", "beam", "group_parameters"):
        assert key in metrics, key
    assert metrics["sentences"] == 20
    assert metrics["greedy"]["sentences_per_second"] > 0
    assert metrics["signature"].startswith("nrefs:1|case:mixed")
    assert metrics["group_parameters"]["full"] == metrics["parameters"]
    hyps = (tiny_pipeline / "data/eval/baseline.beam.txt").read_text().split("\n")[:-1]
    assert len(hyps) == 20
    curve = json.loads((tiny_pipeline / "metrics/train_curve.json").read_text())
    assert [row["epoch"] for row in curve] == [1, 2]
    assert all({"train_loss", "val_loss", "val_bleu"} <= set(row) for row in curve)
    prepare = json.loads((tiny_pipeline / "metrics/prepare.json").read_text())
    assert prepare["train"]["input"] == 300


def test_second_repro_runs_nothing(tiny_pipeline):
    out = dvc(["repro"], tiny_pipeline).stdout
    assert "Running stage" not in out
    assert "up to date" in dvc(["status"], tiny_pipeline).stdout


def test_a_param_change_reruns_only_the_stages_that_read_it(tiny_pipeline):
    """One change after another, one restore at the end: values no computing stage reads (another
    corpus's budget, runtime settings) rerun `resolve` alone; a decoding param reruns `evaluate` and
    no cell. (That the synthetic entry of QAT's budget reruns exactly the QAT cell and its control is
    checked by tests/test_reliability.py's two concurrent repros, whose first repro makes that change:
    one training of those two cells for both checks.)"""
    params = yaml.safe_load((tiny_pipeline / "params.yaml").read_text())
    runtime = params["runtime"]
    # data is synthetic: a Multi30k-only budget is not a dependency of any stage that computes
    params["qat"]["epochs"] = {"synthetic": params["qat"]["epochs"], "multi30k": 5, "files": 3}
    params["imp"]["steps_per_round"] = {"synthetic": params["imp"]["steps_per_round"], "multi30k": 99, "files": 99}
    params["runtime"] = {"threads": 2, "checkpoint_every": 7, "device": "cpu"}
    (tiny_pipeline / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = dvc(["status"], tiny_pipeline).stdout
        assert "resolve:" in status and "train:" not in status and "cell@" not in status, status
        assert ran_stages(dvc(["repro"], tiny_pipeline).stdout) == {"resolve"}
        # (one thread again from here: two threads on a busy 2-core machine train many times slower)
        params["runtime"] = runtime
        params["evaluate"]["beam_size"] = 3
        (tiny_pipeline / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        out = dvc(["repro"], tiny_pipeline).stdout
        assert "Running stage 'evaluate'" in out
        # the cells decode with evaluate.cell_beam_size (greedy), so none of them reruns
        for stage in ("prepare", "tokenize", "train", "plan", "cell@"):
            assert f"Running stage '{stage}" not in out
    finally:
        run(["git", "checkout", "-q", "--", "."], tiny_pipeline)
        dvc(["repro"], tiny_pipeline)  # back from the run-cache, nothing recomputed


def test_translate_command_scores_a_users_files(tiny_pipeline, tmp_path):
    from tcompress.data.corpora import read_split

    src, ref = read_split(tiny_pipeline / "data/prepared/test.parquet")
    (tmp_path / "src.txt").write_text("\n".join(src) + "\n")
    (tmp_path / "ref.txt").write_text("\n".join(ref) + "\n")
    proc = subprocess.run([sys.executable, "-m", "tcompress.cli", "translate", "--checkpoint", "data/model/model.pt",
                           "--tokenizer", "data/tokenized", "--src", str(tmp_path / "src.txt"),
                           "--ref", str(tmp_path / "ref.txt"), "--beam-size", "2", "--out", str(tmp_path / "hyp.txt")],
                          cwd=tiny_pipeline, capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stderr[proc.stderr.index("{"):])
    baseline = json.loads((tiny_pipeline / "metrics/baseline.json").read_text())
    assert result["bleu"] == pytest.approx(baseline["beam"]["bleu"])
    assert (tmp_path / "hyp.txt").read_text() == (tiny_pipeline / "data/eval/baseline.beam.txt").read_text()


def test_translate_reproduces_a_cells_number(tiny_pipeline, tmp_path, monkeypatch):
    """The README's recipe: a cell's BLEU is greedy decoding of its own checkpoint."""
    from tcompress.data.corpora import read_split

    src, ref = read_split(tiny_pipeline / "data/prepared/test.parquet")
    (tmp_path / "src.txt").write_text("\n".join(src) + "\n")
    (tmp_path / "ref.txt").write_text("\n".join(ref) + "\n")
    proc = translate_here(tiny_pipeline, monkeypatch, "--checkpoint", "data/cells/ptq-sym-8-full/model.safetensors",
                          "--src", str(tmp_path / "src.txt"), "--ref", str(tmp_path / "ref.txt"), "--beam-size", "1",
                          "--out", str(tmp_path / "hyp.txt"))
    assert proc.exit_code == 0, proc.stderr
    result = json.loads(proc.stderr[proc.stderr.index("{"):])
    cell = json.loads((tiny_pipeline / "metrics/cells/ptq-sym-8-full.json").read_text())
    assert result["decoding"] == "greedy" and result["bleu"] == cell["bleu"]
    assert (tmp_path / "hyp.txt").read_text() == (tiny_pipeline / "data/cells/ptq-sym-8-full/hyps.txt").read_text()


def test_an_8bit_cell_ships_a_small_file_and_its_int8_number_reproduces(tiny_pipeline, tmp_path, monkeypatch):
    """The artifact is what the metrics say it is, and `translate --int8` gives the evaluate
    stage's second (integer-matmul) number."""
    from tcompress.data.corpora import read_split

    cell = json.loads((tiny_pipeline / "metrics/cells/ptq-sym-8-full.json").read_text())
    artifact = tiny_pipeline / "data/cells/ptq-sym-8-full/model.safetensors"
    baseline = tiny_pipeline / "data/model/model.pt"
    assert cell["file_bytes"] == artifact.stat().st_size and cell["fp32_file_bytes"] == baseline.stat().st_size
    assert cell["file_ratio"] == pytest.approx(baseline.stat().st_size / artifact.stat().st_size, abs=1e-4)
    from tcompress.safetensors_file import read_header

    _, data_start = read_header(artifact)  # the tiny model's JSON header is a large share of its file
    assert 4 * cell["n_model"] / (cell["file_bytes"] - data_start) > 3.8  # int8 codes + float32 scales
    assert "bleu_int8" in cell and cell["int8_linears"] + cell["float_linears"] > 0
    if fbgemm_static_available(8):  # calibrated Linears: fbgemm with the cell's own input ranges
        assert cell["int8_linears"] > 0 and cell["float_linears"] == 0
    else:  # no VNNI: 8-bit input ranges would saturate fbgemm; they decode in float as evaluated
        assert cell["int8_linears"] == 0
    src, ref = read_split(tiny_pipeline / "data/prepared/test.parquet")
    (tmp_path / "src.txt").write_text("\n".join(src) + "\n")
    (tmp_path / "ref.txt").write_text("\n".join(ref) + "\n")
    proc = translate_here(tiny_pipeline, monkeypatch, "--checkpoint", str(artifact), "--src", str(tmp_path / "src.txt"),
                          "--ref", str(tmp_path / "ref.txt"), "--beam-size", "1", "--int8", "--int8-activation-bits",
                          "8", "--out", str(tmp_path / "hyp.txt"))
    assert proc.exit_code == 0, proc.stderr
    assert proc.stderr.startswith("int8: ")  # which kernel ran, in one line
    result = json.loads(proc.stderr[proc.stderr.index("{"):])
    assert result["bleu"] == cell["bleu_int8"] and result["int8_linears"] == cell["int8_linears"]
    assert result["int8_activation_bits"] == 8
    # Without the option: this machine's fastest width (7 bits without VNNI), and the line says which.
    fast = translate_here(tiny_pipeline, monkeypatch, "--checkpoint", str(artifact), "--src", str(tmp_path / "src.txt"),
                          "--ref", str(tmp_path / "ref.txt"), "--beam-size", "1", "--int8",
                          "--out", str(tmp_path / "hyp_auto.txt"))
    assert fast.exit_code == 0, fast.stderr
    bits = fastest_activation_bits()
    assert json.loads(fast.stderr[fast.stderr.index("{"):])["int8_activation_bits"] == bits
    assert f"{bits}-bit activations" in fast.stderr.splitlines()[0]
    refused = translate_here(tiny_pipeline, monkeypatch, "--checkpoint", str(baseline), "--src",
                             str(tmp_path / "src.txt"), "--int8")
    assert refused.exit_code == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "--int8 needs a cell artifact" in refused.stderr
    no_int8 = translate_here(tiny_pipeline, monkeypatch, "--checkpoint", str(artifact), "--src",
                             str(tmp_path / "src.txt"), "--int8-activation-bits", "7")
    assert no_int8.exit_code == 2 and "add --int8" in no_int8.stderr


def test_readmes_safetensors_snippet_opens_a_cell_without_tcompress(tiny_pipeline, monkeypatch):
    pytest.importorskip("safetensors", reason="pip install safetensors (a test extra)")
    text = (REPO / "README.md").read_text()
    start = text.index("```python\nfrom safetensors import safe_open")
    snippet = text[start + len("```python\n"): text.index("```", start + 3)]
    monkeypatch.chdir(tiny_pipeline)  # the tiny grid has the 8-bit cell; the README names a 4-bit one
    scope: dict = {}
    exec(snippet.replace("ptq-sym-4-full", "ptq-sym-8-full"), scope)
    layout = scope["layout"]["encoder.layers.0.feed_forward.w_1.weight_q"]
    assert layout["kind"] == "dense" and layout["dtype"] == "int8"  # 8-bit codes are their own bytes
    assert list(scope["packed"].shape) == layout["shape"]


def test_your_own_corpus_is_tracked_by_content(tmp_path, shared_cache):
    """data=files: editing a line of a corpus file makes `prepare` (and what follows) stale."""
    from tcompress.data.synthetic import generate_splits

    names = {f"{split}_{side}": f"data/corpus/{split}.{'en' if side == 'source' else 'de'}"
             for split in ("train", "valid", "test") for side in ("source", "target")}
    project = make_project(tmp_path, tiny_params(data="files", files=names), shared_cache)
    for split, pairs in generate_splits(60, 10, 10, 5).items():
        for side, lang in ((0, "en"), (1, "de")):
            (project / f"data/corpus/{split}.{lang}").write_text("\n".join(p[side] for p in pairs) + "\n")
    dvc(["repro", "prepare"], project)
    assert "prepare" not in dvc(["status", "prepare"], project).stdout.replace("'prepare'", "")
    lines = (project / "data/corpus/train.de").read_text().split("\n")
    lines[3] = lines[3] + " Ja."
    (project / "data/corpus/train.de").write_text("\n".join(lines))
    status = dvc(["status", "prepare"], project).stdout
    assert "prepare:" in status and "modified:           data/corpus" in status, status
    assert run(["git", "status", "--porcelain", "data/corpus"], project).stdout == ""  # the files stay out of git


def test_plan_command_previews_what_a_change_would_run(tiny_pipeline):
    def plan(*overrides):
        args = [a for o in overrides for a in ("-S", o)]
        proc = subprocess.run([sys.executable, "-m", "tcompress.cli", "plan", *args], cwd=tiny_pipeline,
                              capture_output=True, text=True, env={"PYTHONPATH": str(tiny_pipeline), "PATH": "/usr/bin:/bin"})
        return proc.returncode, proc.stdout, proc.stderr

    rc, out, _ = plan()
    assert rc == 0 and out.rstrip().endswith("(plus the baseline, if its settings changed)")
    assert "ptq-sym-8-full" in out and "new or changed" not in out
    rc, out, _ = plan("groups=[ff,att]")
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("ptq-")}
    assert "planned before" in lines["ptq-sym-8-ff"] and "new or changed, ~" in lines["ptq-sym-8-att"]
    assert "ptq-sym-8-full" not in lines
    rc, _, err = plan("bits=33")
    assert rc == 1 and err.strip() == "Error: bits: 33 is out of range; expected an int from 2 to 16"


def test_each_plot_is_defined_once_with_titles(tiny_pipeline):
    shown = json.loads(dvc(["plots", "show", "--json"], tiny_pipeline).stdout)
    assert not shown.get("errors")
    # the validation curve is the train stage's own plot (so the stage is run-cached), drawn once
    assert set(shown["data"]) == {"training_loss", "metrics/train_curve.json", "bleu_vs_ratio",
                                  "bleu_vs_file_size"}
    (bleu_curve,) = shown["data"]["metrics/train_curve.json"]
    assert {row["val_bleu"] for row in bleu_curve["content"]["data"]["values"]} == \
        {e["val_bleu"] for e in json.loads((tiny_pipeline / "metrics/train_curve.json").read_text())}
    for name, renders in shown["data"].items():
        (spec,) = [r["content"] for r in renders]
        assert "BLEU" in spec["title"]["text"] or "loss" in spec["title"]["text"], name
    assert "/dvc_plots/" in (REPO / ".gitignore").read_text().split()   # the page it writes stays out of git


def test_a_second_clone_restores_the_baseline_from_the_run_cache(tiny_pipeline, shared_cache, tmp_path):
    """The baseline is the costliest stage: a project that shares the cache (a teammate's clone after
    `dvc pull --run-cache`) with the same params gets it back instead of retraining. DVC keeps no
    run-cache entry for a stage with an uncached plain output, hence the curve is a plot."""
    project = make_project(tmp_path, tiny_params(), shared_cache)
    out = dvc(["repro", "train"], project).stdout
    assert "Stage 'train' is cached - skipping run" in out and "Running stage 'train'" not in out, out
    for path in ("data/model/model.pt", "metrics/train.json", "metrics/train_curve.json"):
        assert (project / path).read_bytes() == (tiny_pipeline / path).read_bytes(), path


def test_translate_reads_gzip_and_keeps_empty_lines_empty(tiny_pipeline, tmp_path, monkeypatch):
    import gzip

    from tcompress.data.corpora import read_split

    src, ref = read_split(tiny_pipeline / "data/prepared/test.parquet")
    src, ref = src[:5] + [""] + src[5:8], ref[:5] + [""] + ref[5:8]
    (tmp_path / "src.gz").write_bytes(gzip.compress(("\n".join(src) + "\n").encode()))
    (tmp_path / "ref.txt").write_text("\n".join(ref) + "\n")
    proc = translate_here(tiny_pipeline, monkeypatch, "--src", str(tmp_path / "src.gz"), "--ref",
                          str(tmp_path / "ref.txt"), "--out", str(tmp_path / "hyp.txt"))
    assert proc.exit_code == 0, proc.stderr
    hyps = (tmp_path / "hyp.txt").read_text().split("\n")[:-1]
    assert len(hyps) == 9 and hyps[5] == ""
    assert json.loads(proc.stderr[proc.stderr.index("{"):])["empty_source_lines"] == 1
