"""Paired bootstrap: our p-values are sacrebleu's own (its command line is the reference)."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import noisy, references
from tcompress.significance import paired_bootstrap


@pytest.fixture(scope="module")
def systems():
    rng = random.Random(0)
    refs = references(rng)
    return refs, noisy(refs, 0.30, rng), {"better": noisy(refs, 0.25, rng), "close": noisy(refs, 0.30, rng)}


def test_p_values_equal_the_sacrebleu_command_line(systems, tmp_path):
    refs, base, others = systems
    for name, lines in [("ref", refs), ("base", base), *others.items()]:
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n")
    proc = subprocess.run([str(Path(sys.executable).parent / "sacrebleu"), str(tmp_path / "ref.txt"), "-i",
                           str(tmp_path / "base.txt"), *(str(tmp_path / f"{n}.txt") for n in others), "-m", "bleu",
                           "--paired-bs", "--format", "json"], capture_output=True, text=True, check=True)
    cli = {Path(row["system"]).stem: row["BLEU"] for row in json.loads(proc.stdout)[1:]}
    ours = paired_bootstrap(base, others, refs)
    base_score = json.loads(proc.stdout)[0]["BLEU"]["score"]
    for name in others:
        assert ours[name]["p_value"] == round(cli[name]["p_value"], 4)
        assert ours[name]["delta"] == round(cli[name]["score"] - base_score, 4)
        assert ours[name]["ci_low"] <= ours[name]["delta"] <= ours[name]["ci_high"]


def test_a_clear_gain_excludes_zero_and_identical_output_is_zero(systems):
    refs, base, others = systems
    result = paired_bootstrap(base, {"better": others["better"], "same": list(base)}, refs)
    assert result["better"]["ci_low"] > 0 and result["better"]["p_value"] < 0.05
    assert result["same"] == {"delta": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 0.001}
