"""What a grid's cells cost, from the aggregate's results table, per method.

    python benchmarks/grid_cost.py --results metrics/results.csv [--test-sentences 1000] [--overhead 4.5]

compress: the compress stage in-process (load, fine-tune, export), from each cell's metrics;
evaluate: decoding the test set, sentences / sentences_per_second; overhead: DVC's and the two
processes' start per cell: about 4.5 s in the 48-cell PTQ grid on Multi30k (its wall time less its
cells' compress and decode seconds, over 48: benchmarks/archive/results/multi30k_ptq/, timing.txt
and results.csv). The estimate for a full grid is
the median cell times the grid's size, so that cells slowed by a shared CPU do not skew it.
"""

import click
import pandas as pd

GRID_SIZES = {"ptq": 48, "qat": 48, "agp": 18, "imp": 1}   # the thesis's Multi30k grids


@click.command()
@click.option("--results", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--test-sentences", default=1000, show_default=True, help="sentences each cell decodes")
@click.option("--overhead", default=4.5, show_default=True, help="seconds of DVC and process start per cell")
def main(results: str, test_sentences: int, overhead: float) -> None:
    frame = pd.read_csv(results)
    frame = frame[frame["method"] != "baseline"].copy()
    frame["evaluate_seconds"] = test_sentences / frame["sentences_per_second"]
    frame["cell_seconds"] = frame["compress_seconds"] + frame["evaluate_seconds"] + overhead
    print("| method | cells done | fine-tune steps | compress s (median, max) | evaluate s (median) "
          "| cell s (median) | sum of done cells | full grid at the median |")
    print("|---|---|---|---|---|---|---|---|")
    total = 0.0
    for method, cells in frame.groupby("method", sort=False):
        size = GRID_SIZES.get(method, len(cells))
        median = cells["cell_seconds"].median()
        estimate = median * size
        total += estimate
        steps = cells["finetune_steps"].dropna()
        steps = f"{int(steps.median())}" if len(steps) else "–"
        print(f"| {method} | {len(cells)} of {size} | {steps} "
              f"| {cells['compress_seconds'].median():.1f}, {cells['compress_seconds'].max():.1f} "
              f"| {cells['evaluate_seconds'].median():.1f} | {median:.1f} "
              f"| {cells['cell_seconds'].sum() / 60:.1f} min | {estimate / 60:.1f} min |")
    print(f"\nall grids at the median: {total / 3600:.2f} h")


if __name__ == "__main__":
    main()
