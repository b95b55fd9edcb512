import time

from django.core.management.base import BaseCommand

from media_pipeline.services import sweep_jobs


class Command(BaseCommand):
    help = "Re-queue jobs whose worker died and fail jobs past their deadline."

    def add_arguments(self, parser):
        parser.add_argument("--loop", type=float, default=0, help="Repeat every N seconds (0: run once).")

    def handle(self, *args, **options):
        while True:
            counts = sweep_jobs()
            self.stdout.write(f"requeued {counts['requeued']}, failed {counts['failed']}")
            if not options["loop"]:
                return
            time.sleep(options["loop"])
