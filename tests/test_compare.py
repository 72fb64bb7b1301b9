"""`tcompress pairwise` and `tcompress compare-thesis`: the comparisons the grid's tables do not make.

The thesis comparison prints each thesis cell's Δ beside ours; a pairwise comparison is the grid's own paired bootstrap (tcompress.significance) on the two
cells' translations.
"""

import json
import random

import pytest
from click.testing import CliRunner

from conftest import REPO, noisy, references
from tcompress.cli import main
from tcompress.data.corpora import write_split
from tcompress.significance import paired_bootstrap

@pytest.mark.parametrize("method, table", [("qat", "table_4_5.csv"), ("agp", "table_4_3.csv")])
def test_compare_thesis_prints_the_thesis_delta_of_every_row(method, table):
    """Every thesis Δ printed beside ours is a thesis cell's BLEU minus the thesis's greedy baseline (34.713)."""
    import pandas as pd

    results = REPO / "benchmarks/results/multi30k_qat_agp/results.csv"
    done = CliRunner().invoke(main, ["compare-thesis", "--results", str(results), "--method", method])
    assert done.exit_code == 0, done.output
    thesis = pd.read_csv(REPO / "tcompress/thesis" / table)
    rows = [line for line in done.output.splitlines() if line.startswith("| ") and " / " in line]
    assert len(rows) > 3
    import re

    printed = [float(x) for row in rows for x in re.findall(r" / ([+-]\d+\.\d\d) \(", row)]
    deltas = thesis["bleu"] - 34.713
    assert len(printed) >= len(rows) and all((deltas - x).abs().min() < 0.006 for x in printed), printed


def test_pairwise_is_the_grids_paired_bootstrap_on_two_cells_translations(tmp_path):
    rng = random.Random(0)
    refs = references(rng, 200)
    write_split(tmp_path / "test.parquet", [f"source {i}" for i in range(len(refs))], refs)
    hyps = {"a": noisy(refs, 0.3, rng), "b": noisy(refs, 0.2, rng)}
    for cell, lines in hyps.items():
        (tmp_path / "cells" / cell).mkdir(parents=True)
        (tmp_path / "cells" / cell / "hyps.txt").write_text("".join(line + "\n" for line in lines))
    out = tmp_path / "pairs.json"
    done = CliRunner().invoke(main, ["pairwise", "--cells", str(tmp_path / "cells"), "--test",
                                     str(tmp_path / "test.parquet"), "a:b", "--out", str(out)])
    assert done.exit_code == 0, done.output
    expected = paired_bootstrap(hyps["a"], {"b": hyps["b"]}, refs)["b"]
    assert json.loads(out.read_text())["pairs"] == [{"a": "a", "b": "b", **expected}]
    assert expected["delta"] > 0 and f"b − a: {expected['delta']:+.2f} BLEU" in done.output

    missing = CliRunner().invoke(main, ["pairwise", "--cells", str(tmp_path / "cells"), "--test",
                                        str(tmp_path / "test.parquet"), "a:c"])
    assert missing.exit_code == 1 and "holds no translations of cell 'c'" in missing.output
    malformed = CliRunner().invoke(main, ["pairwise", "--cells", str(tmp_path / "cells"), "--test",
                                          str(tmp_path / "test.parquet"), "ab"])
    assert malformed.exit_code == 1 and "expected CELL_A:CELL_B" in malformed.output
