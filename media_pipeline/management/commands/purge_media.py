from django.core.management.base import BaseCommand

from media_pipeline.retention import purge_media


class Command(BaseCommand):
    help = "Delete orphan media files and voice samples/photos kept longer than needed."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="List what would be deleted; delete nothing.")
        parser.add_argument("--older-than-hours", type=float, default=24, help="Age of abandoned uploads to purge.")

    def handle(self, *args, **options):
        deleted = purge_media(dry_run=options["dry_run"], older_than_hours=options["older_than_hours"])
        verb = "would delete" if options["dry_run"] else "deleted"
        for name in deleted:
            self.stdout.write(f"{verb} {name}")
        self.stdout.write(f"{verb} {len(deleted)} file(s)")
