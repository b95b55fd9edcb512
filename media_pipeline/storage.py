"""Media at rest. Local files are Fernet-encrypted (MultiFernet, so keys can rotate); S3 uses
server-side encryption and private objects (see settings). Code reads media through
`read_bytes` / `local_copy` so it never cares which storage is configured.

An encrypted file is a header (MAGIC, the plaintext chunk size, a random file id) and then one
length-prefixed Fernet token per CHUNK bytes of plaintext. Fernet has no streaming mode, so the
file is cut into tokens, and each token also authenticates the file id, its own index and whether
it is the last one: a chunk that was cut off, dropped, reordered or copied from another file is
refused instead of being read as shorter or different media. Files written before this format
(one Fernet token for the whole file, or chunks without the index) are still read."""

import base64
import hashlib
import io
import os
import shutil
import struct
import tempfile
from contextlib import contextmanager
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, default_storage


@cache
def media_fernet() -> MultiFernet:
    keys = list(settings.MEDIA_ENCRYPTION_KEYS)
    if not keys:
        # Development only (settings refuse this when DEBUG is off): derive from SECRET_KEY.
        keys = [base64.urlsafe_b64encode(hashlib.sha256(settings.SECRET_KEY.encode()).digest()).decode()]
    return MultiFernet([Fernet(k) for k in keys])


MAGIC = b"ALWENC2\n"
# Plaintext bytes per Fernet token. Memory stays flat whatever the file size, at about seven
# chunks while one is encrypted (Fernet's one-shot API pads, encrypts, joins and base64-encodes,
# each a copy), so the chunk is kept small; the framing costs about 100 bytes per chunk.
CHUNK = 256 * 1024
HEADER = struct.Struct(">I16s")  # plaintext chunk size, file id
LENGTH = struct.Struct(">I")  # before each token
CHUNK_PREFIX = struct.Struct(">16sQ?")  # inside each token: file id, chunk index, last chunk
CHUNKED_V1_MAGIC = b"ALWENC1\n"  # earlier chunked files: tokens of bare plaintext
FERNET_TOKEN_START = b"gAAAAA"  # a single Fernet token (version byte 0x80, base64): the first format


class MediaDecryptionError(OSError):
    """A stored media file cannot be read back: no configured key fits, or it was damaged."""


def _read_full(source, size: int) -> bytes:
    """Exactly `size` bytes unless the source ends first (some file objects return short reads)."""
    parts, wanted = [], size
    while wanted and (part := source.read(wanted)):
        if isinstance(part, str):
            part = part.encode()
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


def encrypted_pieces(source, fernet: MultiFernet, chunk_size: int = CHUNK):
    """The encrypted file for `source`, a piece at a time: the header, then one length-prefixed
    token per chunk. One chunk is read ahead so the last one can be marked as last."""
    file_id = os.urandom(16)
    yield MAGIC + HEADER.pack(chunk_size, file_id)
    data, index = _read_full(source, chunk_size), 0
    while True:
        following = _read_full(source, chunk_size)
        last = not following
        token = fernet.encrypt(CHUNK_PREFIX.pack(file_id, index, last) + data)
        yield LENGTH.pack(len(token))
        yield token
        if last:
            return
        data, index = following, index + 1


class _EncryptingContent:
    """What FileSystemStorage._save writes: the encrypted pieces instead of the plaintext. It has
    no `temporary_file_path`, so an upload's plaintext temporary file is never moved into place."""

    def __init__(self, content):
        self.content = content

    def chunks(self):
        return encrypted_pieces(self.content, media_fernet())


class EncryptedMediaFile(io.RawIOBase):
    """A seekable, read-only view of an encrypted file that decrypts one chunk when it is read:
    opening a 500 MB video to stream a byte range costs two chunks of memory, not 500 MB. Opening
    checks the last chunk, so a truncated file is refused at once with its size unknown."""

    def __init__(self, raw, name: str, fernet: MultiFernet):
        super().__init__()
        self._raw, self._name, self._fernet = raw, name, fernet
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None
        head = raw.read(len(MAGIC) + HEADER.size)
        if len(head) < len(MAGIC) + HEADER.size:
            raise self._damaged("it ends inside its header")
        self._chunk_size, self._file_id = HEADER.unpack(head[len(MAGIC) :])
        self._start = len(head)
        end = os.fstat(raw.fileno()).st_size
        body = end - self._start
        first = raw.read(LENGTH.size)
        if len(first) < LENGTH.size:
            raise self._damaged("it has no chunks (truncated)")
        (self._token_length,) = LENGTH.unpack(first)
        # Every chunk but the last holds chunk_size bytes, so every record but the last has the
        # first one's length: chunk i starts at a known offset, which is what makes seeking cheap.
        self._record = LENGTH.size + self._token_length
        self._count = max(1, -(-body // self._record))
        self._end = end
        last = self._chunk(self._count - 1)
        self.size = (self._count - 1) * self._chunk_size + len(last)

    def _damaged(self, why: str) -> MediaDecryptionError:
        return MediaDecryptionError(f"{self._name} cannot be read: {why}.")

    def _chunk(self, index: int) -> bytes:
        if self._cached and self._cached[0] == index:
            return self._cached[1]
        offset = self._start + index * self._record
        self._raw.seek(offset)
        header = self._raw.read(LENGTH.size)
        if len(header) < LENGTH.size:
            raise self._damaged(f"it ends inside chunk {index} (truncated)")
        (length,) = LENGTH.unpack(header)
        last = index == self._count - 1
        if last and offset + LENGTH.size + length > self._end:
            raise self._damaged(f"it ends inside chunk {index} (truncated)")
        if last and offset + LENGTH.size + length < self._end:
            raise self._damaged("it goes on after its last chunk")
        if not last and length != self._token_length:
            raise self._damaged(f"chunk {index} has the wrong length (altered)")
        try:
            plain = self._fernet.decrypt(self._raw.read(length))
        except InvalidToken:
            raise self._damaged(
                f"chunk {index} fails its integrity check (altered, or no configured key fits)"
            ) from None
        file_id, stored_index, stored_last = CHUNK_PREFIX.unpack_from(plain)
        if file_id != self._file_id or stored_index != index:
            raise self._damaged(f"chunk {index} belongs elsewhere (chunks were moved or copied in)")
        if stored_last != last:
            raise self._damaged(
                "chunks are missing at its end (truncated)" if last else "it goes on after its last chunk"
            )
        data = plain[CHUNK_PREFIX.size :]
        if not last and len(data) != self._chunk_size:
            raise self._damaged(f"chunk {index} has the wrong length (altered)")
        self._cached = (index, data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def read(self, size: int = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self._pos + size)
        parts = []
        while self._pos < end:
            index, skip = divmod(self._pos, self._chunk_size)
            part = self._chunk(index)[skip : skip + end - self._pos]
            parts.append(part)
            self._pos += len(part)
        return b"".join(parts)

    def readall(self) -> bytes:
        return self.read()

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
            self._cached = None
        super().close()


def _legacy_plaintext(raw, head: bytes, name: str):
    """Files written by earlier versions: decrypted whole (a single token cannot be split)."""
    fernet = media_fernet()
    try:
        if head.startswith(CHUNKED_V1_MAGIC):
            plain = tempfile.SpooledTemporaryFile(max_size=4 * CHUNK)
            raw.seek(len(CHUNKED_V1_MAGIC))
            while header := raw.read(LENGTH.size):
                (length,) = LENGTH.unpack(header) if len(header) == LENGTH.size else (-1,)
                token = raw.read(length) if length >= 0 else b""
                if length < 0 or len(token) < length:
                    raise MediaDecryptionError(f"{name} cannot be read: it ends inside a chunk (truncated).")
                plain.write(fernet.decrypt(token))
            plain.seek(0)
            return plain
        raw.seek(0)
        return io.BytesIO(fernet.decrypt(raw.read()))
    except InvalidToken:
        raise MediaDecryptionError(
            f"{name} cannot be read: it fails its integrity check (altered, or no configured key fits)."
        ) from None
    finally:
        raw.close()


class EncryptedFileSystemStorage(FileSystemStorage):
    """Private local storage: every file is encrypted on save and decrypted on open, one CHUNK
    Fernet token at a time so neither uploads nor videos are ever held whole in memory."""

    encrypted = True

    def _save(self, name, content):
        try:
            content.seek(0)
        except (AttributeError, OSError):
            pass
        return super()._save(name, _EncryptingContent(content))

    def _open(self, name, mode="rb"):
        if "w" in mode or "a" in mode or "+" in mode:
            raise ValueError("Encrypted media is written with save(), not opened for writing.")
        raw = open(self.path(name), "rb")
        try:
            head = raw.read(len(MAGIC))
            raw.seek(0)
            if head == MAGIC:
                return File(EncryptedMediaFile(raw, name, media_fernet()), name=name)
            if head.startswith((CHUNKED_V1_MAGIC, FERNET_TOKEN_START)):
                return File(_legacy_plaintext(raw, head, name), name=name)
            raise MediaDecryptionError(f"{name} cannot be read: it is not an encrypted media file.")
        except BaseException:
            raw.close()
            raise

    def size(self, name):
        with self._open(name) as f:
            return f.size

    def url(self, name):
        # Media is never public. Where the app has an authorised view for the file (it checks the
        # owner, so anyone else gets 404) that is its URL; otherwise "#", which opens nothing.
        # Django's file widgets (the admin's change forms) need a URL to show the current file.
        return authorised_media_url(name) or "#"

    def rotate(self, name) -> None:
        """Re-encrypt one file under the newest key, chunk by chunk (raises MediaDecryptionError
        if no key fits or the file is damaged; the file is then left as it was)."""
        path = self.path(name)
        tmp = f"{path}.rotating"
        try:
            with self._open(name) as plain, open(tmp, "wb") as dst:
                for piece in encrypted_pieces(plain, media_fernet()):
                    dst.write(piece)
            shutil.copymode(path, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def authorised_media_url(name: str) -> str:
    """The app's URL for a stored file where an ownership-checked view serves it, else ""."""
    from django.db.models import Q
    from django.urls import reverse

    from media_pipeline.models import JobKind, MediaAsset, MediaJob
    from media_pipeline.views import PERSONA_MEDIA_FIELDS
    from personas.models import WritingPersona

    if not name:
        return ""
    if asset_id := MediaAsset.objects.filter(file=name).values_list("pk", flat=True).first():
        return reverse("media:asset", args=[asset_id])
    fields = PERSONA_MEDIA_FIELDS.values()
    match = Q()
    for field_name in fields:
        match |= Q(**{field_name: name})
    if persona := WritingPersona.objects.filter(match).values("pk", *fields).first():
        kind = next(kind for kind, field_name in PERSONA_MEDIA_FIELDS.items() if persona[field_name] == name)
        return reverse("media:persona", args=[persona["pk"], kind])
    job_kinds = [JobKind.VOICE_CLONE, JobKind.AVATAR_CREATE]
    if (
        job_id := MediaJob.objects.filter(kind__in=job_kinds, result__preview_file=name)
        .values_list("pk", flat=True)
        .first()
    ):
        return reverse("media:job_preview", args=[job_id])
    return ""


def read_bytes(field_or_name) -> bytes:
    name = getattr(field_or_name, "name", field_or_name)
    with default_storage.open(name) as f:
        return f.read()


@contextmanager
def local_copy(field_or_name, suffix: str = ""):
    """A plaintext temporary file for libraries that need a path; removed afterwards."""
    fd, path = tempfile.mkstemp(suffix=suffix)
    name = getattr(field_or_name, "name", field_or_name)
    try:
        with os.fdopen(fd, "wb") as f, default_storage.open(name) as source:
            shutil.copyfileobj(source, f, CHUNK)
        yield path
    finally:
        os.unlink(path)


def delete_file(field) -> None:
    """Delete a FileField's file if present (idempotent)."""
    if field and field.name:
        field.storage.delete(field.name)
