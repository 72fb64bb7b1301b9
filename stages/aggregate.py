"""aggregate: baseline + every cell -> results table (Parquet, CSV), Markdown tables, summary, plot data,
and the self-contained HTML report."""

import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this repository's tcompress, first (see tcompress/stage.py)
from tcompress.report import write_report
from tcompress.results import (collect, markdown_report, markdown_summary, plot_points, significance_by_cell,
                               summary)
from tcompress.results import deployed_table
from tcompress.stage import guarded, read_config, write_json


@click.command()
@click.option("--config", "config_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="the resolved grid (data/config/cells.json): each method's table layout")
@click.option("--baseline", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--cells", "cells_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--cell-dirs", required=True, type=click.Path(exists=True, file_okay=False),
              help="the cells' folders, holding their translations of the test split")
@click.option("--baseline-hyps", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--test", "test_split", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--parquet", required=True, type=click.Path(dir_okay=False))
@click.option("--csv", "csv_file", required=True, type=click.Path(dir_okay=False))
@click.option("--tables", required=True, type=click.Path(dir_okay=False))
@click.option("--summary", "summary_file", required=True, type=click.Path(dir_okay=False))
@click.option("--summary-md", "summary_md", required=True, type=click.Path(dir_okay=False),
              help="the best cell of each method, as a Markdown table")
@click.option("--plot", "plot_file", required=True, type=click.Path(dir_okay=False))
@click.option("--significance", "significance_file", required=True, type=click.Path(dir_okay=False),
              help="each cell's Δ, 95 % interval and p-value against the baseline and its control")
@click.option("--report", "report_file", type=click.Path(dir_okay=False),
              help="the HTML report: summary, plots, tables, curves, heat map in one offline page")
@click.option("--train-curve", type=click.Path(dir_okay=False),
              help="the baseline's per-epoch curve for the report (metrics/train_curve.json); optional")
@click.option("--seed-metrics", type=click.Path(file_okay=False),
              help="the metrics of the seeds besides the first (metrics/seeds/<seed>/), read when `seeds` lists several")
@click.option("--seed-dirs", type=click.Path(file_okay=False),
              help="their baselines' and cells' translations (data/seeds/<seed>/)")
@guarded
def main(config_file: str, baseline: str, cells_dir: str, cell_dirs: str, baseline_hyps: str, test_split: str,
         parquet: str, csv_file: str, tables: str,
         summary_file: str, summary_md: str, plot_file: str, significance_file: str, report_file: str | None,
         train_curve: str | None, seed_metrics: str | None, seed_dirs: str | None) -> None:
    from tcompress.data.corpora import read_split

    config = read_config(config_file)
    references = read_split(test_split)[1]
    frame = collect(baseline, cells_dir, cell_dirs, baseline_hyps, references)
    if len(config.get("seeds", [])) > 1:
        from tcompress.seeds import across_seeds, seed_frames

        if not (seed_metrics and seed_dirs):
            raise click.UsageError("several seeds are selected: pass --seed-metrics and --seed-dirs")
        frames = seed_frames(config["seeds"], frame, Path(seed_metrics))
        frame = across_seeds(frames, Path(cell_dirs), Path(baseline_hyps), Path(seed_dirs), references)
    for path in (parquet, csv_file, tables):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(parquet, index=False)
    frame.to_csv(csv_file, index=False)
    layout = config["layout"]
    Path(tables).write_text(markdown_report(frame, layout) + deployed_table(frame))
    facts = summary(frame)
    write_json(summary_file, facts)
    Path(summary_md).write_text(markdown_summary(facts))
    write_json(plot_file, plot_points(frame))
    write_json(significance_file, significance_by_cell(frame))
    if report_file:
        write_report(report_file, frame, baseline, layout, train_curve, cell_dirs)
    click.echo(markdown_summary(facts))


if __name__ == "__main__":
    main()
