import time

from django.core.management.base import BaseCommand

from media_pipeline.retention import purge_media
from media_pipeline.services import sweep_jobs


class Command(BaseCommand):
    help = "Re-queue jobs whose worker died and fail jobs past their deadline; optionally purge old media."

    def add_arguments(self, parser):
        parser.add_argument("--loop", type=float, default=0, help="Repeat every N seconds (0: run once).")
        parser.add_argument(
            "--purge-every",
            type=float,
            default=3600,
            help="With --loop: also run purge_media every N seconds, so abandoned samples never outlive "
            "the 24 h retention even without cron (0: never).",
        )
        parser.add_argument("--purge", action="store_true", help="Without --loop: also run purge_media once.")

    def handle(self, *args, **options):
        last_purge = None
        while True:
            counts = sweep_jobs()
            self.stdout.write(f"requeued {counts['requeued']}, failed {counts['failed']}")
            purge_due = (
                options["purge"]
                if not options["loop"]
                else options["purge_every"] > 0
                and (last_purge is None or time.monotonic() - last_purge >= options["purge_every"])
            )
            if purge_due:
                self.stdout.write(f"purged {len(purge_media())} file(s)")
                last_purge = time.monotonic()
            if not options["loop"]:
                return
            time.sleep(options["loop"])
