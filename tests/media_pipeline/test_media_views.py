import os

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from media_pipeline.models import MediaAsset
from media_pipeline.storage import CHUNK, MAGIC, read_bytes

PAYLOAD = os.urandom(CHUNK * 2 + 12345)  # spans three encrypted chunks


def make_asset(user, data=PAYLOAD):
    name = default_storage.save("private/generated/clip.mp4", ContentFile(data))
    return MediaAsset.objects.create(user=user, kind="video", file=name, mime_type="video/mp4")


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_large_files_are_stored_in_encrypted_chunks_and_read_back_whole(db):
    name = default_storage.save("private/generated/big.bin", ContentFile(PAYLOAD))
    with open(default_storage.path(name), "rb") as f:
        raw = f.read()
    assert raw.startswith(MAGIC) and PAYLOAD[:64] not in raw
    assert read_bytes(name) == PAYLOAD


def test_the_owner_streams_the_whole_file(owner_client, owner):
    response = owner_client.get(reverse("media:asset", args=[make_asset(owner).pk]))
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(PAYLOAD)) and response["Cache-Control"] == "private, no-store"
    assert body(response) == PAYLOAD


def test_byte_ranges_let_players_seek(owner_client, owner):
    url = reverse("media:asset", args=[make_asset(owner).pk])
    response = owner_client.get(url, headers={"Range": f"bytes={CHUNK - 10}-{CHUNK + 9}"})
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {CHUNK - 10}-{CHUNK + 9}/{len(PAYLOAD)}"
    assert body(response) == PAYLOAD[CHUNK - 10 : CHUNK + 10]
    tail = owner_client.get(url, headers={"Range": "bytes=-100"})
    assert body(tail) == PAYLOAD[-100:]
    beyond = owner_client.get(url, headers={"Range": f"bytes={len(PAYLOAD) + 5}-"})
    assert beyond.status_code == 416


def test_downloads_are_named_and_other_users_get_404(client, owner, other_user):
    asset = make_asset(owner)
    client.force_login(owner)
    response = client.get(reverse("media:asset", args=[asset.pk]), {"download": "1"})
    assert response["Content-Disposition"] == f'attachment; filename="video-{asset.pk}.mp4"'
    client.force_login(other_user)
    assert client.get(reverse("media:asset", args=[asset.pk])).status_code == 404
