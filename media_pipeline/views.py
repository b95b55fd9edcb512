"""Media is never public: these views stream a file after checking that it belongs to the user.
Local files are decrypted on the way out; on S3 the user is redirected to a short-lived signed URL."""

import mimetypes
import re

from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import Http404, HttpResponse, HttpResponseRedirect, StreamingHttpResponse

from media_pipeline.models import JobKind, JobStatus, MediaAsset, MediaJob
from personas.models import WritingPersona
from personas.selectors import get_owned_or_404

PERSONA_MEDIA_FIELDS = {
    "voice-preview": "voice_preview",
    "avatar-preview": "avatar_preview",
    "avatar-photo": "avatar_image",
    "avatar-portrait": "avatar_portrait",
}
RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)$")


def stream_file(request, name: str, *, download_name: str = "", mime_type: str = ""):
    if not name or not default_storage.exists(name):
        raise Http404
    if not getattr(default_storage, "encrypted", False):
        return HttpResponseRedirect(default_storage.url(name))
    f = default_storage.open(name)
    size = f.size
    start, end, status = 0, size - 1, 200
    match = RANGE_RE.match(request.headers.get("Range", ""))
    if match and size:
        # Byte ranges let browsers seek in audio and video.
        first, last = match.groups()
        if first:
            start, end = int(first), min(int(last) if last else end, end)
        elif last:
            start = max(0, size - int(last))
        if start > end:
            f.close()
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        status = 206
    response = StreamingHttpResponse(
        _read_range(f, start, end - start + 1),
        status=status,
        content_type=mime_type or mimetypes.guess_type(name)[0] or "application/octet-stream",
    )
    response["Content-Length"] = str(end - start + 1 if size else 0)
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, no-store"
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    if download_name:
        response["Content-Disposition"] = f'attachment; filename="{download_name}"'
    return response


def _read_range(f, start: int, length: int, block: int = 64 * 1024):
    try:
        f.seek(start)
        while length > 0 and (data := f.read(min(block, length))):
            length -= len(data)
            yield data
    finally:
        f.close()


@login_required
def persona_media(request, persona_id: int, kind: str):
    if kind not in PERSONA_MEDIA_FIELDS:
        raise Http404
    persona = get_owned_or_404(WritingPersona, request.user, pk=persona_id)
    return stream_file(request, getattr(persona, PERSONA_MEDIA_FIELDS[kind]).name)


@login_required
def job_preview(request, job_id: int):
    """The preview of a finished training job (a retrain candidate before approval)."""
    job = get_owned_or_404(MediaJob, request.user, pk=job_id, kind__in=[JobKind.VOICE_CLONE, JobKind.AVATAR_CREATE])
    if job.status != JobStatus.SUCCEEDED:
        raise Http404
    return stream_file(request, job.result.get("preview_file", ""))


@login_required
def asset_file(request, asset_id: int):
    asset = get_owned_or_404(MediaAsset, request.user, pk=asset_id)
    download = request.GET.get("download") == "1"
    ext = mimetypes.guess_extension(asset.mime_type) or ""
    return stream_file(
        request,
        asset.file.name,
        mime_type=asset.mime_type,
        download_name=f"{asset.content_type or asset.kind}-{asset.pk}{ext}" if download else "",
    )
