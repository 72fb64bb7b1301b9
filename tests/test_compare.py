"""`tcompress pairwise` and `tcompress compare-thesis`: the comparisons the grid's tables do not make.

The thesis comparison of the committed Multi30k QAT/AGP grid is the one BENCHMARKS.md shows, line for
line; a pairwise comparison is the grid's own paired bootstrap (tcompress.significance) on the two
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

BENCHMARKS = (REPO / "BENCHMARKS.md").read_text()


@pytest.mark.parametrize("method", ["qat", "agp"])
def test_compare_thesis_prints_the_tables_benchmarks_md_shows(method):
    results = REPO / "benchmarks/results/multi30k_qat_agp/results.csv"
    done = CliRunner().invoke(main, ["compare-thesis", "--results", str(results), "--method", method])
    assert done.exit_code == 0, done.output
    lines = [line for line in done.output.splitlines() if line]
    assert len(lines) > 3 and all(line in BENCHMARKS for line in lines), lines


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
