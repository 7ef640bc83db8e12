"""What importing Feast costs a command, Feast imported the lean way (common/adapter/
feast_import.py) against Feast importing itself (old behaviour ``feast-lean``), in one run,
alternating, each in a new process:

* ``import``: the import alone (``import_feast()`` against ``import feast``), whether torch
  was loaded by it and the process's peak RSS;
* ``features export``: the whole command on a home prepared once (synthetic 1m bars through
  ``ingest --preprocess``), the command a user runs to read stored features.

    python benchmarks/feast_import.py [--rounds 5] [--days 7] [--work DIR]

Prints each case's median seconds with min..max and the ratio old / new.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLI = str(Path(sys.executable).with_name("drl-trading"))

IMPORT_CODE = {
    "new": (
        "import sys, time; t = time.perf_counter()\n"
        "from drl_trading.common.adapter.feast_import import import_feast\n"
        "import_feast()\n"
    ),
    "old": "import sys, time; t = time.perf_counter()\nimport feast, feast.repo_config\n",
}
REPORT = (
    "import resource\n"
    "print(time.perf_counter() - t, 'torch' in sys.modules,"
    " resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
)


def _import_once(how: str) -> tuple[float, bool, float]:
    """Seconds of the import, whether torch was loaded, and the process's peak RSS (MiB)."""
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_CODE[how] + REPORT],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), out[1] == "True", int(out[2]) / 1024


def _command_once(how: str, home: Path, args: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", how, "--", *args],
        capture_output=True,
        text=True,
        check=False,
        env=None,
        cwd=home.parent,
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{how} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return elapsed


def _child(how: str, args: list[str]) -> None:
    """One command as ``drl-trading`` runs it, Feast's import old or new."""
    sys.path.insert(0, str(HERE))
    import old_behaviour
    from drl_trading.cli.app import main as cli

    with old_behaviour.switched(["feast-lean"] if how == "old" else []):
        sys.argv = ["drl-trading", *args]
        cli()


def _line(name: str, times: list[float]) -> None:
    print(
        f"{name:<40}{statistics.median(times):>8.2f} s  "
        f"(min {min(times):.2f} .. max {max(times):.2f}, n={len(times)})"
    )


def _ratio(name: str, old: list[float], new: list[float]) -> None:
    pairs = [o / n for o, n in zip(old, new, strict=True)]
    print(
        f"{name:<40}{statistics.median(old) / statistics.median(new):>8.2f}x "
        f"(rounds {min(pairs):.2f}..{max(pairs):.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--days", type=int, default=7, help="days of 1m bars in the home")
    parser.add_argument("--work", type=Path, default=None, help="folder for the home (temporary)")
    parser.add_argument("--child", choices=["old", "new"], help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.child:
        _child(ns.child, ns.args)
        return

    work = ns.work or Path(tempfile.mkdtemp(prefix="feast_import_"))
    home = work / "home"
    shutil.rmtree(home, ignore_errors=True)
    start, end = "2024-01-01", f"2024-01-{1 + ns.days:02d}"
    prepared = subprocess.run(
        [CLI, "--home", str(home), "ingest", "-s", "BTCUSDT", "--start", start, "--end", end,
         "--preprocess"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if prepared.returncode != 0:
        raise SystemExit(f"preparing the home failed:\n{prepared.stderr[-3000:]}")
    export = ["--home", str(home), "features", "export", "-s", "BTCUSDT", "--start", start,
              "--end", end, "--out", str(work / "features.parquet")]  # fmt: skip

    imports: dict[str, list[float]] = {"old": [], "new": []}
    torch: dict[str, set[bool]] = {"old": set(), "new": set()}
    rss: dict[str, list[float]] = {"old": [], "new": []}
    commands: dict[str, list[float]] = {"old": [], "new": []}
    for r in range(ns.rounds):
        order = ("old", "new") if r % 2 == 0 else ("new", "old")
        for how in order:
            seconds, loaded, peak = _import_once(how)
            imports[how].append(seconds)
            torch[how].add(loaded)
            rss[how].append(peak)
        for how in order:
            commands[how].append(_command_once(how, home, export))
    print(json.dumps({"rounds": ns.rounds, "days_of_1m_bars": ns.days}))
    for how, label in (("old", "Feast imports itself"), ("new", "import_feast")):
        _line(f"import, {label}", imports[how])
        print(
            f"{'':<40}torch loaded by the import: {sorted(torch[how])}, peak RSS "
            f"{statistics.median(rss[how]):.0f} MiB"
        )
    _ratio("import, old / new", imports["old"], imports["new"])
    for how, label in (("old", "Feast imports itself"), ("new", "import_feast")):
        _line(f"features export, {label}", commands[how])
    _ratio("features export, old / new", commands["old"], commands["new"])
    if ns.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
