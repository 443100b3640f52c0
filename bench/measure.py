"""Timing, query counting and the results table every benchmark reports into."""

import json
import os
import platform
import statistics
import time
from dataclasses import dataclass, field

import django
import psutil
from django.db import connection
from django.test.utils import CaptureQueriesContext


def median_ms(call, runs, warmup=5, setup=None):
    """The p50 wall time of call() in milliseconds; setup() runs before each call, untimed."""
    return statistics.median(timings_ms(call, runs, warmup, setup))


def timings_ms(call, runs, warmup=5, setup=None):
    samples = []
    for n in range(warmup + runs):
        if setup:
            setup()
        started = time.perf_counter()
        call()
        if n >= warmup:
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def interleaved_ms(calls, runs, warmup=5):
    """{name: p50 ms} of calls taken in turn, so a burst of other work on the machine hits all alike."""
    samples = {name: [] for name in calls}
    for n in range(warmup + runs):
        for name, call in calls.items():
            sample = timings_ms(call, 1, warmup=0)
            if n >= warmup:
                samples[name] += sample
    return {name: statistics.median(times) for name, times in samples.items()}


def queries_of(call, setup=None):
    """The SQL statements one call() runs (counted on a run of its own, so timing stays clean)."""
    if setup:
        setup()
    with CaptureQueriesContext(connection) as captured:
        call()
    return [query["sql"] for query in captured.captured_queries]


def machine():
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "django": django.get_version(),
        # Figures taken while other work runs on the machine are noisy: this says how busy it was.
        "load_average_at_start": load_average(),
    }


def load_average():
    return [round(load, 2) for load in os.getloadavg()]


@dataclass
class Results:
    """Figures grouped under the issue's keys (gallery, submit, sweep, download, polls, throughput)."""

    info: dict
    figures: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)
    errors: int = 0

    def add(self, group, name, label, value, target, met, **details):
        """One table row; met is True, False or None (a figure reported without a target)."""
        self.figures.setdefault(group, {})[name] = {"value": value, "target": target, "met": met, **details}
        self.rows.append((label, value, target, {True: "yes", False: "NO", None: "-"}[met]))
        print(f"  {label}: {value}  (target {target}: {self.rows[-1][3]})", flush=True)

    def failed(self, group, exc):
        self.errors += 1
        self.figures.setdefault(group, {})["error"] = repr(exc)
        self.rows.append((f"{group}: the benchmark failed", repr(exc)[:100], "-", "ERROR"))

    def table(self):
        header = ("figure", "value", "target", "met?")
        widths = [max(len(str(row[i])) for row in [header, *self.rows]) for i in range(4)]
        line = "+".join("-" * (width + 2) for width in widths)
        lines = [_row(header, widths), line, *(_row(row, widths) for row in self.rows)]
        return "\n".join(lines)

    def write(self, path):
        path.write_text(json.dumps({**self.info, "figures": self.figures}, indent=2, default=str) + "\n")


def _row(cells, widths):
    return " | ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True))
