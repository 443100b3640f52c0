"""The fault scenarios as a table: `make faults` runs tests/test_faults.py and prints what each did.

Each scenario is a real test (worker and beat processes, Redis, the simulator over
HTTP) that writes its figures to the JSON-lines file named by FAULTS_REPORT. The
run fails unless every test passed and every row shows 0 lost and at most one
create call per job. `FAULTS_LONG=1` adds the slow rows (PostgreSQL down 5 minutes).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = [
    ("scenario", "scenario"),
    ("jobs", "jobs"),
    ("succeeded", "succeeded"),
    ("failed", "failed"),
    ("unknown", "unknown"),
    ("lost", "lost"),
    ("max_creates", "creates/job max"),
    ("max_polls", "polls/job max"),
    ("min_gap", "shortest poll gap s"),
    ("seconds", "run s"),
]


def run_scenarios(report):
    env = {**os.environ, "FAULTS_REPORT": str(report)}
    command = [sys.executable, "-m", "pytest", "tests/test_faults.py", "-q", "-p", "no:cacheprovider"]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def table(rows):
    cells = [[label for _, label in COLUMNS]]
    cells += [["-" if row[key] is None else str(row[key]) for key, _ in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = [
        " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in cells
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def main():
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soraweb-faults-") as folder:
        report = Path(folder) / "faults.jsonl"
        returncode = run_scenarios(report)
        rows = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    rows.sort(key=lambda row: row["scenario"])
    print()
    print(table(rows))
    print(f"\n{len(rows)} scenarios in {time.monotonic() - started:.0f} s")
    broken = [row["scenario"] for row in rows if row["lost"] or row["max_creates"] > 1]
    if returncode or not rows or broken:
        print(f"FAILED: tests exit {returncode}; rows losing a job or billing one twice: {broken or 'none'}")
        return 1
    print("Every scenario: 0 lost, at most 1 create call per job.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
