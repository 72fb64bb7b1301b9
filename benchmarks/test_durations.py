"""Where the test suite's time goes: one pytest run, its total, each file's share, the slowest tests.

    python benchmarks/test_durations.py                   # the whole suite
    python benchmarks/test_durations.py -- -m "not slow"  # the quick tier

Runs ``python -m pytest -q`` (and whatever follows ``--``; its xdist workers as pyproject.toml sets
them, so the wall time is CI's and the tests' times add up to more) with a JUnit XML report, and writes
``--out``: the command, the machine (CPU model, logical CPUs, the flags line of /proc/cpuinfo),
the wall time and outcome counts, per-file totals and the slowest tests. A test's time is its
setup, call and teardown together, so a session or module fixture's set-up (a shared DVC project)
counts in the first test that asks for it.
"""

import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]


def cpu() -> tuple[str, str]:
    """The CPU's model name and its flags line, as /proc/cpuinfo gives them."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), "(no /proc/cpuinfo)"
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return fields.get("model name", platform.machine()), fields.get("flags", "(no flags line)")


def file_of(case: ET.Element) -> str:
    """``tests.test_grid`` (pytest's classname, a class name appended for methods) -> tests/test_grid.py."""
    parts = case.get("classname", "").split(".")
    while parts and not (REPO / Path(*parts)).with_suffix(".py").exists():
        parts.pop()
    return str(Path(*parts).with_suffix(".py")) if parts else case.get("classname", "?")


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--out", default=str(REPO / "benchmarks/results/test_durations.txt"), show_default=True,
              type=click.Path(dir_okay=False))
@click.option("--slowest", default=30, show_default=True, help="how many of the slowest tests to list")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def main(out: str, slowest: int, pytest_args: tuple[str, ...]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", *pytest_args]
        load = os.getloadavg()   # other work on the machine slows the run down: say how busy it was
        start = time.perf_counter()
        proc = subprocess.run([*cmd, f"--junitxml={junit}", "-p", "no:cacheprovider"], cwd=REPO)
        wall = time.perf_counter() - start
        cases = list(ET.parse(junit).getroot().iter("testcase"))

    outcome: dict[str, int] = defaultdict(int)
    per_file: dict[str, list[float]] = defaultdict(list)
    timed = []
    for case in cases:
        kind = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        outcome[kind] += 1
        seconds = float(case.get("time", 0))
        per_file[file_of(case)].append(seconds)
        timed.append((seconds, f"{file_of(case)}::{case.get('name')}"))

    model, flags = cpu()
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    shown = " ".join(["python -m pytest -q", *(f'"{a}"' if " " in a else a for a in pytest_args)])
    lines = [f"command: OMP_NUM_THREADS={threads} {shown}   (run by benchmarks/test_durations.py)",
             f"cpu: {model}; {len(os.sched_getaffinity(0))} logical CPUs usable of {os.cpu_count()}",
             f"cpu flags: {flags}",
             f"load average before the run (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
             f"total: {wall:.1f} s wall for {len(cases)} tests ("
             + ", ".join(f"{n} {k}" for k, n in sorted(outcome.items())) + f"); pytest exit status {proc.returncode}",
             f"sum of test times: {sum(t for t, _ in timed):.1f} s (setup + call + teardown of each test)",
             "", "per file (seconds, tests):"]
    for name, times in sorted(per_file.items(), key=lambda kv: -sum(kv[1])):
        lines.append(f"{sum(times):9.1f} {len(times):5d}  {name}")
    lines += ["", f"the {slowest} slowest tests (seconds):"]
    lines += [f"{t:9.1f}  {name}" for t, name in sorted(timed, reverse=True)[:slowest]]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(lines) + "\n")
    click.echo(f"{out}: {wall:.1f} s, {len(cases)} tests")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
