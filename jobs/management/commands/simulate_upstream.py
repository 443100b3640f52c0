import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from jobs.simulator import Simulator


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Serve a fake of the Sora 2 gateway (shared/UPSTREAM.md) for the demo and integration tests."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=getattr(settings, "SORA_SIMULATOR_PORT", 8765))
        parser.add_argument("--api-key", default=None, help="The only key accepted; by default any key is.")
        parser.add_argument(
            "--generation-seconds", type=float, default=20.0, help="Time from create to completed."
        )
        parser.add_argument("--hang-seconds", type=float, default=5.0, help="How long 'timeout' faults hang.")
        parser.add_argument(
            "--status-variants", action="store_true", help="Say pending/in_progress/succeeded."
        )
        parser.add_argument("--cache-dir", default=None, help="Where generated MP4s are kept.")

    def handle(self, *args, **options):
        simulator = Simulator(
            host=options["host"],
            port=options["port"],
            api_key=options["api_key"],
            generation_seconds=options["generation_seconds"],
            hang_seconds=options["hang_seconds"],
            status_variants=options["status_variants"],
            cache_dir=options["cache_dir"],
        )
        # Process managers stop us with SIGTERM; leave the same clean way as on Ctrl-C.
        signal.signal(signal.SIGTERM, _interrupt)
        self.stdout.write(f"Simulator listening on {simulator.url}")
        self.stdout.flush()
        try:
            simulator.serve_forever()
        except KeyboardInterrupt:
            self.stdout.write("Simulator stopped.")
