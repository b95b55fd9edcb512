from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError

from media_pipeline.retention import all_stored_files
from media_pipeline.storage import MediaDecryptionError


class Command(BaseCommand):
    help = "Re-encrypt every local media file under the newest MEDIA_ENCRYPTION_KEYS key, chunk by chunk."

    def handle(self, *args, **options):
        if not getattr(default_storage, "encrypted", False):
            raise CommandError("Media is not stored encrypted locally (S3 uses server-side encryption).")
        rotated, unreadable = 0, []
        for name in all_stored_files():
            try:
                default_storage.rotate(name)
                rotated += 1
            except MediaDecryptionError as exc:
                unreadable.append(str(exc))
        self.stdout.write(f"re-encrypted {rotated} file(s)")
        if unreadable:
            raise CommandError(f"{len(unreadable)} file(s) could not be re-encrypted:\n" + "\n".join(unreadable))
