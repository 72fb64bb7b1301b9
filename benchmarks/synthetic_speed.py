"""How long generating the synthetic corpus takes, by corpus size.

    python benchmarks/synthetic_speed.py --pairs 30000
"""

import time

import click

from tcompress.data.synthetic import generate_pairs


@click.command()
@click.option("--pairs", default=30_000, show_default=True)
@click.option("--repeats", default=3, show_default=True)
def main(pairs: int, repeats: int) -> None:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        generate_pairs(pairs, 99)
        times.append(time.perf_counter() - start)
    click.echo(f"{pairs:,} distinct pairs: best {min(times):.2f} s of {repeats} ({pairs / min(times):,.0f} pairs/s)")


if __name__ == "__main__":
    main()
