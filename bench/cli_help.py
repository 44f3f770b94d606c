"""Wall time of `keyhouse --help` (the CLI's start-up cost), over N runs.

    .venv/bin/python bench/cli_help.py --runs 20

Each run is a fresh subprocess of the installed `keyhouse` script next to this Python (else
`python -m keyhouse`); prints the median and the maximum. Target: under 0.3 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 0.3


def command() -> list[str]:
    script = Path(sys.executable).with_name("keyhouse")
    if script.exists():
        return [str(script)]
    found = shutil.which("keyhouse")
    return [found] if found else [sys.executable, "-m", "keyhouse"]


def measure(runs: int, args: list[str]) -> list[float]:
    cmd = [*command(), *args]
    subprocess.run(cmd, capture_output=True, check=True)  # warm the file cache once
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="How many runs (default 20)")
    parser.add_argument(
        "args", nargs="*", default=["--help"], help="Arguments to keyhouse (default --help)"
    )
    options = parser.parse_args()
    times = measure(options.runs, options.args)
    median, worst = statistics.median(times), max(times)
    shown = " ".join(["keyhouse", *options.args])
    print(f"{shown}: {options.runs} runs, median {median:.3f} s, max {worst:.3f} s")
    verdict = "meets" if median < TARGET_SECONDS else "misses"
    print(f"target < {TARGET_SECONDS} s: median {verdict} it")


if __name__ == "__main__":
    main()
