"""`python -m simulator`: serve the fake gateway until Ctrl-C or SIGTERM."""

import argparse
import signal

from simulator.server import Simulator


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default=None, help="The only key accepted; by default any key is.")
    parser.add_argument(
        "--generation-seconds", type=float, default=20.0, help="Time from create to completed."
    )
    parser.add_argument("--hang-seconds", type=float, default=5.0, help="How long 'timeout' faults hang.")
    parser.add_argument("--status-variants", action="store_true", help="Say pending/in_progress/succeeded.")
    parser.add_argument("--cache-dir", default=None, help="Where generated MP4s are kept.")
    options = parser.parse_args(argv)
    simulator = Simulator(
        host=options.host,
        port=options.port,
        api_key=options.api_key,
        generation_seconds=options.generation_seconds,
        hang_seconds=options.hang_seconds,
        status_variants=options.status_variants,
        cache_dir=options.cache_dir,
    )
    # Process managers stop us with SIGTERM; leave the same clean way as on Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"Simulator listening on {simulator.url}", flush=True)
    try:
        simulator.serve_forever()
    except KeyboardInterrupt:
        print("Simulator stopped.", flush=True)


if __name__ == "__main__":
    main()
