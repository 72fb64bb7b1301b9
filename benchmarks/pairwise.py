"""Paired-bootstrap comparison of two cells' translations: Δ BLEU (B − A) with its 95 % interval and
sacrebleu's p-value, for comparisons the grid's tables do not make (a method against another).

    python benchmarks/pairwise.py --cells data/cells --test data/prepared/test.parquet \
        binary-att:bsflex-flex-att binary-att:bsflex-fixed-att --out benchmarks/results/pairs.json

Each cell's ``hyps.txt`` is what the evaluate step decoded from its artifact; the test is the same
as the grid's (``tcompress.significance``: 1,000 resamples, seed 12345).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from tcompress.data.corpora import read_split
from tcompress.significance import paired_bootstrap


def hyps(cells: Path, cell: str) -> list[str]:
    return (cells / cell / "hyps.txt").read_text().split("\n")[:-1]


@click.command()
@click.option("--cells", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--test", "test_split", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False))
@click.argument("pairs", nargs=-1, required=True)
def main(cells: str, test_split: str, out: str | None, pairs: tuple[str, ...]) -> None:
    references = read_split(test_split)[1]
    rows = []
    for pair in pairs:
        a, sep, b = pair.partition(":")
        if not sep:
            raise click.BadParameter(f"{pair!r}: expected CELL_A:CELL_B")
        result = paired_bootstrap(hyps(Path(cells), a), {b: hyps(Path(cells), b)}, references)[b]
        rows.append({"a": a, "b": b, **result})
        click.echo(f"{b} − {a}: {result['delta']:+.2f} BLEU, 95 % CI [{result['ci_low']:+.2f}, "
                   f"{result['ci_high']:+.2f}], p = {result['p_value']:.4f}")
    if out:
        command = f"python benchmarks/pairwise.py --cells {cells} --test {test_split} " + " ".join(pairs)
        Path(out).write_text(json.dumps({"command": command, "pairs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
