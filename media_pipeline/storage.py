"""Media at rest. Local files are Fernet-encrypted (MultiFernet, so keys can rotate); S3 uses
server-side encryption and private objects (see settings). Code reads media through
`read_bytes` / `local_copy` so it never cares which storage is configured."""

import base64
import hashlib
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


MAGIC = b"ALWENC1\n"
CHUNK = 1024 * 1024  # plaintext bytes per Fernet token: memory stays flat whatever the file size
LENGTH = struct.Struct(">I")


def _encrypted_chunks(source, fernet: MultiFernet):
    yield MAGIC
    while chunk := source.read(CHUNK):
        token = fernet.encrypt(chunk)
        yield LENGTH.pack(len(token)) + token


def _tokens(stream):
    """The Fernet tokens of an encrypted file, one at a time."""
    head = stream.read(len(MAGIC))
    if head != MAGIC:
        raise InvalidToken
    while header := stream.read(LENGTH.size):
        (length,) = LENGTH.unpack(header)
        yield stream.read(length)


class EncryptedFileSystemStorage(FileSystemStorage):
    """Private local storage: every file is encrypted on save and decrypted on open, one 1 MiB
    Fernet token at a time so neither uploads nor videos are ever held whole in memory."""

    encrypted = True

    def _save(self, name, content):
        content.seek(0)
        with tempfile.TemporaryFile() as encrypted:
            for piece in _encrypted_chunks(content, media_fernet()):
                encrypted.write(piece)
            encrypted.seek(0)
            return super()._save(name, File(encrypted))

    def _open(self, name, mode="rb"):
        plain = tempfile.SpooledTemporaryFile(max_size=4 * CHUNK)
        try:
            with super()._open(name, "rb") as f:
                for token in _tokens(f):
                    plain.write(media_fernet().decrypt(token))
        except InvalidToken as exc:
            plain.close()
            raise OSError(f"{name} cannot be decrypted with the configured keys") from exc
        plain.seek(0)
        return File(plain, name=name)

    def size(self, name):
        with self._open(name) as f:
            return f.size

    def url(self, name):
        # Media is never public: views stream it after an ownership check.
        raise NotImplementedError("Encrypted media has no public URL; use an authorised view.")

    def rotate(self, name) -> None:
        """Re-encrypt one file under the newest key (raises InvalidToken if no key fits)."""
        path = self.path(name)
        tmp = f"{path}.rotating"
        try:
            with open(path, "rb") as src, open(tmp, "wb") as dst:
                dst.write(MAGIC)
                for token in _tokens(src):
                    rotated = media_fernet().rotate(token)
                    dst.write(LENGTH.pack(len(rotated)) + rotated)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


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
