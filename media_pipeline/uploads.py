"""Refuse oversized uploads while they stream in, before anything reaches the disk twice."""

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload


class SizeLimitUploadHandler(FileUploadHandler):
    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        # Django does not catch StopUpload raised here (only while fields stream in), so the
        # refusal happens when the first file starts.
        self.request.upload_too_large = bool(content_length and content_length > settings.MAX_UPLOAD_BYTES)

    def new_file(self, *args, **kwargs):
        if self.request.upload_too_large:
            raise StopUpload(connection_reset=False)

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > settings.MAX_UPLOAD_BYTES:
            self.request.upload_too_large = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size):
        return None


def upload_too_large_message() -> str:
    limit_mb = settings.MAX_UPLOAD_BYTES // (1024 * 1024)
    return f"That file is larger than {limit_mb} MB. Please upload a smaller file."
