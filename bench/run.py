"""`make bench`: every figure of issue 7 against its target, printed as one table and
written to bench/results.json.

    python -m bench.run                   # everything (what `make bench` runs)
    python -m bench.run gallery sweep     # only these groups, on the same 100,000 rows
"""

import argparse
import sys
import time
import traceback
from pathlib import Path

from bench import environment

RESULTS_FILE = Path(__file__).resolve().parent / "results.json"
GROUPS = (
    "gallery", "library", "submit", "api", "sweep", "download", "s3", "polls", "adaptive", "throughput",
    "notify", "zip", "spend",
)  # fmt: skip
FIRST_ROWS = 100
ALL_ROWS = 100_000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "groups", nargs="*", metavar="GROUP", help=f"any of {', '.join(GROUPS)} (default: all)"
    )
    groups = parser.parse_args().groups or GROUPS
    if unknown := set(groups) - set(GROUPS):
        parser.error(f"unknown group(s) {', '.join(sorted(unknown))}; choose from {', '.join(GROUPS)}")
    started = time.monotonic()
    env = environment.prepare()  # Before Django reads its settings.
    try:
        results = run(env, groups)
    finally:
        environment.teardown(env)
    seconds = time.monotonic() - started
    results.info["run_seconds"] = round(seconds, 1)
    results.write(RESULTS_FILE)
    print(f"\n{results.table()}\n\nDatabase: {env.database}. Broker: {env.redis}.")
    print(f"Machine: {results.info['machine']}.")
    print(f"Whole run: {seconds // 60:.0f} min {seconds % 60:.0f} s. Figures written to {RESULTS_FILE}.")
    if results.errors:
        sys.exit(f"{results.errors} benchmark group(s) failed; see the tracebacks above.")


def run(env, groups):
    import django

    django.setup()
    from django.utils import timezone

    from bench import adaptive, api, data, desk, measure, pipeline, web
    from bench.download import download
    from bench.library import library
    from bench.s3_upload import s3_upload
    from bench.spend import spend
    from bench.sweep import sweep
    from bench.zip_export import zip_export
    from jobs.models import VideoJob

    results = measure.Results({"machine": measure.machine(), "database": env.database, "broker": env.redis})
    print(f"Database: {env.database}\nBroker: {env.redis}\nMachine: {results.info['machine']}", flush=True)
    data.migrate()
    team, now = data.team(), timezone.now()
    data.add_jobs(0, FIRST_ROWS, team, now)

    def add_the_rest():
        if VideoJob.objects.count() < ALL_ROWS:
            data.add_jobs(FIRST_ROWS, ALL_ROWS, team, now)

    benchmarks = {
        "gallery": lambda: web.gallery(results, web.signed_in_client(team[0]), grow=add_the_rest),
        "library": lambda: library(results, web.signed_in_client(team[0]), team[0]),
        "submit": lambda: web.submit(results),
        "api": lambda: api.api(results, team[0]),
        "sweep": lambda: sweep(results),
        "download": lambda: download(results),
        "s3": lambda: s3_upload(results),
        "polls": lambda: pipeline.polls(results, team[1]),
        "adaptive": lambda: adaptive.adaptive(results, team[1]),
        "throughput": lambda: pipeline.throughput(results, team[2]),
        "notify": lambda: desk.notify_and_desk(results, team[0]),
        "zip": lambda: zip_export(results),
        # Last: it spreads the jobs over 50 owners.
        "spend": lambda: spend(results, team),
    }
    for name, benchmark in benchmarks.items():
        if name in groups:
            try:
                benchmark()
            except Exception as exc:  # One broken benchmark must not cost the others' figures.
                traceback.print_exc()
                results.failed(name, exc)
        add_the_rest()  # The gallery grows the table itself; every later benchmark runs on 100,000 rows.
    results.info["machine"]["load_average_at_end"] = measure.load_average()
    return results


if __name__ == "__main__":
    main()
