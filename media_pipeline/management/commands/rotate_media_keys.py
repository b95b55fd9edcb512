from cryptography.fernet import InvalidToken
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError

from media_pipeline.retention import all_stored_files


class Command(BaseCommand):
    help = "Re-encrypt every local media file under the newest MEDIA_ENCRYPTION_KEYS key."

    def handle(self, *args, **options):
        if not getattr(default_storage, "encrypted", False):
            raise CommandError("Media is not stored encrypted locally (S3 uses server-side encryption).")
        rotated, unreadable = 0, []
        for name in all_stored_files():
            try:
                default_storage.rotate(name)
                rotated += 1
            except InvalidToken:
                unreadable.append(name)
        self.stdout.write(f"re-encrypted {rotated} file(s)")
        if unreadable:
            raise CommandError(f"{len(unreadable)} file(s) match no configured key: " + ", ".join(unreadable))
