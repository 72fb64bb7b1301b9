"""params.yaml's deploy section on the tiny pipeline: which stages it reruns, what the cells record.

Off (the default), writing the section or changing its other values reruns `resolve` alone and the
metrics hold no deployed numbers. On, exactly the integer cells of <= 8 bits and the baseline's
evaluation get it; a symmetric per-row 8-bit PTQ cell's CTranslate2 export decodes to its int8 BLEU
and its metrics give the export folder's bytes; the baseline's float32 export decodes to its own
greedy translations. Without CTranslate2 the stage stops with one line saying how to install it.
"""

import importlib.util
import json
import subprocess
import sys

import pytest
import yaml

from conftest import dvc, ran_stages, run
from tcompress.translate_ct2 import cpu_info, int8_gemm

pytestmark = pytest.mark.slow
needs_ct2 = pytest.mark.skipif(importlib.util.find_spec("ctranslate2") is None,
                               reason='CTranslate2 is the deploy extra: pip install -e ".[deploy]"')
DEPLOYED = ("bleu_deployed", "sentences_per_second_deployed", "deployed_bytes")
CELL = "ptq-sym-8-full"
EXPORTED = {CELL, "ptq-sym-8-ff", "qat-sym-4-full"}   # TINY's selected integer cells of <= 8 bits


def plans(project) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (project / "data/plan/cells").glob("*.json")}


@needs_ct2
def test_deploy_section_reruns_only_what_it_exports_and_records_the_export(tiny_pipeline, tmp_path):
    project = tiny_pipeline
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["deploy"]["backend"] == "none"
    metrics = {p.stem: json.loads(p.read_text()) for p in (project / "metrics/cells").glob("*.json")}
    assert metrics[CELL] and not any(k in m for m in metrics.values() for k in DEPLOYED)
    assert not any(k in json.loads((project / "metrics/baseline.json").read_text()) for k in DEPLOYED)
    before = plans(project)
    try:
        # Off: the section left out, or its other values changed, is no dependency of any computing stage.
        for section in (None, {"backend": "none", "compute_type": "int8_float32", "threads": 3, "beam_size": 2}):
            changed = {k: v for k, v in params.items() if k != "deploy"}
            if section is not None:
                changed["deploy"] = section
            (project / "params.yaml").write_text(yaml.safe_dump(changed, sort_keys=False))
            assert ran_stages(dvc(["repro"], project).stdout) == {"resolve"}
        # On: a per-row weight-only PTQ cell, so that its int8 numbers are CTranslate2's int8 numbers.
        params["deploy"]["backend"] = "ctranslate2"
        params["ptq"] |= {"per_channel": True, "activations": "none"}
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        stages = ran_stages(dvc(["repro", f"cell@{CELL}"], project).stdout)
        assert stages == {"resolve", "plan", f"cell@{CELL}"}
        after = plans(project)
        assert {c for c in after if "deploy" in after[c]} == EXPORTED
        ptq = {c for c in after if c.startswith("ptq-") and after[c]["selected"]}
        assert {c for c in after if after[c] != before[c]} == EXPORTED | ptq    # and ptq's own settings' cells
        assert after["qat-sym-4-full"]["code"] != before["qat-sym-4-full"]["code"]   # the export's code counts
        assert after["agp-10-70-1-full"] == before["agp-10-70-1-full"]
        assert json.loads((project / "data/config/evaluate.json").read_text())["deploy"]["beam_size"] == 1

        m = json.loads((project / f"metrics/cells/{CELL}.json").read_text())
        folder = project / f"data/cells/{CELL}/ct2"
        assert m["deployed_bytes"] == sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        assert m["deployed_bytes"] > (folder / "model.bin").stat().st_size > 0
        assert m["deployed_compute_type"] == "int8_float32" and m["deployed_differences"] == "int8 inputs per row"
        cpu = cpu_info()
        assert m["deployed_cpu_flags"] == " ".join(cpu["flags"]) and m["deployed_int8_gemm"] == int8_gemm(cpu)
        assert m["sentences_per_second_deployed"] > 0
        if int8_gemm(cpu) in ("vnni", "amx"):
            assert abs(m["bleu_deployed"] - m["bleu_int8"]) <= 0.1, m
        else:   # AVX2's u8·s8 GEMM sums pairs in 16 bits and may saturate: the numbers differ a little
            assert abs(m["bleu_deployed"] - m["bleu_int8"]) <= 2.0, m

        assert ran_stages(dvc(["repro", "evaluate"], project).stdout) == {"evaluate"}
        base = json.loads((project / "metrics/baseline.json").read_text())
        assert base["deployed_compute_type"] == "float32" and base["deployed_differences"] == "none"
        # the float32 export decodes greedily as our decoder does
        assert (project / "data/eval/hyps_deployed.txt").read_text() == \
            (project / "data/eval/baseline.greedy.txt").read_text()
        assert base["bleu_deployed"] == base["greedy"]["bleu"]

        # Without CTranslate2: one line saying how to install it, before the cell computes anything.
        code = ("import sys; sys.modules['ctranslate2'] = None\nfrom stages.cell import main\n"
                f"sys.argv = ['cell', '--plan', 'data/plan/cells/{CELL}.json', '--baseline', 'data/model/model.pt',"
                " '--tokenized', 'data/tokenized', '--valid', 'data/prepared/valid.parquet', '--test',"
                f" 'data/prepared/test.parquet', '--resume', {str(tmp_path / 'r.pt')!r}, '--out', {str(tmp_path / 'c')!r},"
                f" '--metrics', {str(tmp_path / 'm.json')!r}]\nmain()\n")
        proc = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True,
                              env={"PYTHONPATH": str(project), "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
            'error: CTranslate2 is not installed; install the deploy extra: pip install -e ".[deploy]"'], proc.stderr
        assert not (tmp_path / "c").exists() and not (tmp_path / "m.json").exists()
    finally:
        run(["git", "checkout", "-q", "--", "."], project)
        dvc(["repro"], project)  # back from the run-cache, nothing recomputed
