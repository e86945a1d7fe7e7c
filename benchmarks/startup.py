"""Start-up time of `mlcase --help` against `python -c pass` and `import mlflow`.

Runs each command N times in fresh processes and prints the median wall time and the ratios,
side by side. The goal: `mlcase --help` costs little more than starting Python, far less than
importing MLflow (mlcase imports its heavy libraries only where they are used).

Usage: ``python benchmarks/startup.py [--runs 7]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

N = 7
PY = sys.executable
MLCASE = str(Path(PY).parent / "mlcase")

COMMANDS = {
    "python -c pass": [PY, "-c", "pass"],
    "import mlcase": [PY, "-c", "import mlcase"],
    "mlcase --help": [MLCASE, "--help"],
    "import mlflow": [PY, "-c", "import mlflow"],
}


def median_seconds(cmd: list[str], runs: int = N) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=N, help="fresh processes per command (the median is shown)")
    args = ap.parse_args()
    res = {name: median_seconds(cmd, max(args.runs, 1)) for name, cmd in COMMANDS.items()}
    floor, anchor = res["python -c pass"], res["import mlflow"]
    print(f"{'command':<18} {'median ms':>10} {'x python':>10} {'x import mlflow':>16}")
    for name, t in res.items():
        print(f"{name:<18} {t * 1000:>10.0f} {t / floor:>10.2f} {t / anchor:>16.3f}")
    print(f"\n`mlcase --help` is {anchor / res['mlcase --help']:.1f}x faster than `import mlflow`")


if __name__ == "__main__":
    main()
