import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import ExifTags, Image

from media_pipeline import photo
from tests import photo_factory as pf


def messages(report: photo.PhotoReport) -> str:
    return " ".join(c.message for c in report.errors + report.warnings)


def check_level(report: photo.PhotoReport, name: str) -> str:
    return next(c.level for c in report.checks if c.name == name)


def test_a_clear_portrait_passes_and_reports_json(tmp_path):
    report = photo.analyse_photo(pf.write(tmp_path, "me.jpg", pf.astronaut()))

    assert report.errors == [] and report.warnings == []
    assert report.metrics["face_count"] == 1
    assert report.metrics["format"] == "JPEG"
    assert report.face_box[3] >= 200
    data = json.loads(json.dumps(report.as_dict()))
    assert set(data) == {"metrics", "checks", "errors", "warnings"}
    assert {"name", "level", "message"} == set(data["checks"][0])


def test_a_photo_without_a_face_is_refused(tmp_path):
    report = photo.analyse_photo(pf.write(tmp_path, "coffee.jpg", pf.coffee()))

    assert "We could not find a face" in messages(report)
    assert report.metrics["face_box"] is None


def test_two_faces_are_refused(tmp_path):
    report = photo.analyse_photo(pf.write(tmp_path, "pair.jpg", pf.two_astronauts()))

    assert "We found 2 faces; use a photo with only you in it." in messages(report)


def test_a_second_person_further_back_in_a_large_photo_is_counted(tmp_path):
    # The first search runs on a small copy that cannot show the second face (about 170 px of
    # 4000); it is big enough to count (over 0.4 of the first face), so the photo is searched again.
    scene = Image.new("RGB", (4000, 2400), (128, 128, 128))
    scene.paste(pf.astronaut(1500), (100, 100))
    scene.paste(pf.astronaut(900), (2600, 600))
    report = photo.analyse_photo(pf.write(tmp_path, "group.jpg", scene))

    assert "We found 2 faces; use a photo with only you in it." in messages(report)


def test_a_small_photo_is_refused(tmp_path):
    report = photo.analyse_photo(pf.write(tmp_path, "small.jpg", pf.astronaut(480)))

    assert check_level(report, "size") == "error"
    assert "480x480 px; its shorter side must be at least 512 px" in messages(report)


def test_a_small_face_is_refused_with_its_size(tmp_path):
    report = photo.analyse_photo(pf.write(tmp_path, "far.jpg", pf.astronaut(800)))

    height = report.face_box[3]
    assert 130 < height < 200
    assert f"Your face is {height} px tall; it must be at least 200 px" in messages(report)
    assert check_level(report, "size") == "ok"


def test_a_blurry_photo_is_refused_and_a_soft_one_flagged(tmp_path):
    blurry = photo.analyse_photo(pf.write(tmp_path, "blurry.jpg", pf.blurred(pf.astronaut(), 6)))
    soft = photo.analyse_photo(pf.write(tmp_path, "soft.jpg", pf.blurred(pf.astronaut(), 2)))

    assert check_level(blurry, "sharpness") == "error"
    assert "The photo is blurry" in messages(blurry)
    assert check_level(soft, "sharpness") in {"warning", "error"}


@pytest.mark.parametrize(("factor", "message"), [(0.3, "The photo is too dark"), (1.5, "The photo is too bright")])
def test_bad_exposure_is_refused(tmp_path, factor, message):
    report = photo.analyse_photo(pf.write(tmp_path, "exposure.jpg", pf.scaled_brightness(pf.astronaut(), factor)))

    assert check_level(report, "exposure") == "error"
    assert message in messages(report)
    # Darkness alone does not make the photo count as blurry.
    assert check_level(report, "sharpness") == "ok"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims huge dimensions: a decompression bomb's shape."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(bytes(1024))
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", pixels) + png_chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused(tmp_path):
    report = photo.analyse_photo(pf.write(tmp_path, "bomb.png", png_claiming(100_000, 100_000)))

    assert "The photo is too large; use one under 40 megapixels." in messages(report)


def test_a_photo_over_the_pixel_limit_is_refused(tmp_path, settings, monkeypatch):
    settings.PHOTO_LIMITS = {**settings.PHOTO_LIMITS, "max_pixels": 1_000_000}
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # photo sets Pillow's global
    # 1.44 MP is over the limit but under twice it, where Pillow only warns.
    report = photo.analyse_photo(pf.write(tmp_path, "big.png", pf.astronaut(), "PNG"))

    assert "The photo is too large; use one under 1 megapixels." in messages(report)


def rotated_with_gps() -> bytes:
    """A portrait stored on its side with an orientation tag, as phones do, plus a location."""
    upright = pf.astronaut().crop((150, 0, 1050, 1200))  # 900 x 1200
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # 1200 x 900
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # display rotated 90 degrees clockwise
    exif[ExifTags.Base.Make] = "PhoneCo"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (51.0, 30.0, 12.5)
    return pf.encode(stored, "JPEG", exif=exif)


def test_orientation_is_applied_and_no_exif_or_gps_survives(tmp_path):
    path = pf.write(tmp_path, "phone.jpg", rotated_with_gps())
    assert Image.open(path).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the test photo does carry GPS

    report = photo.analyse_photo(path)
    clean = Image.open(io.BytesIO(photo.sanitised_jpeg(path)))

    assert (report.metrics["width"], report.metrics["height"]) == (900, 1200)
    assert report.errors == []  # the face is found only because the photo was turned upright
    assert clean.size == (900, 1200)
    assert clean.format == "JPEG"
    assert len(clean.getexif()) == 0
    assert "exif" not in clean.info
    assert b"Exif" not in photo.sanitised_jpeg(path)


def phone_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneCo"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (51.0, 30.0, 12.5)
    return exif


def assert_clean_jpeg(data: bytes, size: tuple[int, int]) -> None:
    clean = Image.open(io.BytesIO(data))
    assert clean.format == "JPEG" and clean.size == size
    assert len(clean.getexif()) == 0 and "exif" not in clean.info and b"Exif" not in data
    assert b"PhoneCo" not in data


def test_a_phone_jpeg_with_a_second_image_mpo_is_read_as_its_first_frame(tmp_path):
    # Phones append a depth map or a second lens's image; Pillow reads such a JPEG as MPO.
    second = Image.new("RGB", (1200, 1200), "black")
    path = pf.write(
        tmp_path, "phone.jpg", pf.astronaut(), "MPO", save_all=True, append_images=[second], exif=phone_exif()
    )
    with Image.open(path) as stored:
        assert stored.format == "MPO" and stored.n_frames == 2 and stored.getexif()

    report = photo.analyse_photo(path)

    assert report.errors == [] and report.metrics["format"] == "MPO" and report.metrics["face_count"] == 1
    assert 120 < report.metrics["brightness"] < 200  # the portrait, not the black second frame
    assert_clean_jpeg(photo.sanitised_jpeg(report.photo), (1200, 1200))


def test_a_heic_photo_is_accepted_and_re_encoded_as_jpeg_without_exif(tmp_path):
    path = pf.write(tmp_path, "IMG_0001.HEIC", pf.astronaut(), "HEIF", quality=90, exif=phone_exif())
    with Image.open(path) as stored:
        assert stored.format == "HEIF" and stored.getexif()[ExifTags.Base.Make] == "PhoneCo"

    report = photo.analyse_photo(path)

    assert report.errors == [] and report.metrics["format"] == "HEIF" and report.metrics["face_count"] == 1
    assert_clean_jpeg(photo.sanitised_jpeg(report.photo), (1200, 1200))
    assert Image.open(io.BytesIO(photo.portrait_crop(report.photo, report))).size == (512, 512)


@pytest.mark.parametrize("name", ["IMG_0001.HEIC", "photo.heif", "me.jpg"])
def test_the_photo_form_takes_heic_files(settings, name):
    from django import forms
    from django.core.files.uploadedfile import SimpleUploadedFile

    from onboarding.forms import PHOTO_EXTENSIONS, PhotoForm, _check_upload

    def check(file_name):
        upload = SimpleUploadedFile(file_name, b"photo bytes")
        _check_upload(upload, extensions=PHOTO_EXTENSIONS, max_bytes=settings.MAX_PHOTO_UPLOAD_BYTES, kind="a photo")

    check(name)  # accepted: the content is judged later, in the worker
    with pytest.raises(forms.ValidationError, match="HEIC, HEIF"):
        check("photo.tiff")
    assert ".heic" in PhotoForm.base_fields["photo"].widget.attrs["accept"]


def test_the_sanitised_copy_is_capped(tmp_path):
    clean = Image.open(io.BytesIO(photo.sanitised_jpeg(pf.write(tmp_path, "huge.jpg", pf.astronaut(3000)))))

    assert clean.size == (2048, 2048)


def test_the_portrait_is_a_square_png_centred_on_the_face(tmp_path, settings):
    path = pf.write(tmp_path, "me.jpg", pf.astronaut())
    portrait = Image.open(io.BytesIO(photo.portrait_crop(path, photo.analyse_photo(path))))

    assert portrait.format == "PNG"
    assert portrait.size == (512, 512)
    [[x, y, w, h]] = photo.find_faces(np.asarray(portrait.convert("L")))
    expected_x, expected_y, expected_w, _ = photo.portrait_face_box(512)
    assert abs(x + w / 2 - (expected_x + expected_w / 2)) < 15
    assert abs(y - expected_y) < 20
    assert abs(w - expected_w) < 25


@pytest.mark.parametrize(
    ("convert", "image_format"),
    [
        (lambda image: image.convert("CMYK"), "JPEG"),
        (lambda image: image.quantize(256), "PNG"),  # palette, as PNG optimisers write them
        (lambda image: image.convert("LA"), "PNG"),
        (lambda image: image.convert("RGBA"), "WEBP"),
        (lambda image: image.convert("L"), "JPEG"),
    ],
    ids=["cmyk", "palette", "grey-alpha", "rgba", "grey"],
)
def test_other_colour_modes_are_accepted(tmp_path, convert, image_format):
    report = photo.analyse_photo(pf.write(tmp_path, "photo", convert(pf.astronaut()), image_format))

    assert report.errors == []
    assert report.metrics["format"] == image_format


def test_a_16_bit_photo_keeps_its_tones(tmp_path):
    grey = np.asarray(pf.astronaut().convert("L")).astype(np.uint16) * 257
    report = photo.analyse_photo(pf.write(tmp_path, "deep.png", Image.fromarray(grey), "PNG"))

    assert report.errors == []
    assert 140 < report.metrics["brightness"] < 170


def test_the_format_comes_from_the_content_not_the_name(tmp_path):
    report = photo.analyse_photo(pf.write(tmp_path, "holiday.jpg", pf.astronaut(), "WEBP"))

    assert report.errors == []
    assert report.metrics["format"] == "WEBP"


def animated(image_format: str) -> bytes:
    frames = [pf.astronaut(600), pf.astronaut(600).rotate(10)]
    return pf.encode(frames[0], image_format, save_all=True, append_images=frames[1:])


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="800" height="800"><script>alert(1)</script></svg>'
HTML = b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("anim.gif", animated("GIF"), "GIF images are not supported; upload a JPEG, PNG, WebP or HEIC photo."),
        ("anim.webp", animated("WEBP"), "Animated images are not supported; upload a still photo."),
        ("drawing.svg", SVG, "This file is not a photo we can read; upload a JPEG, PNG, WebP or HEIC image."),
        ("page.png", HTML, "This file is not a photo we can read; upload a JPEG, PNG, WebP or HEIC image."),
        ("empty.jpg", b"", "The file is empty; please upload the photo again."),
        ("cut.jpg", pf.encode(pf.astronaut())[:20_000], "The photo file is damaged or incomplete"),
        ("iphone.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "This HEIC photo cannot"),
    ],
)
def test_unusable_files_get_a_clear_error(tmp_path, name, content, message):
    report = photo.analyse_photo(pf.write(tmp_path, name, content))

    assert [c.name for c in report.errors] == ["file"]
    assert message in report.errors[0].message
    json.dumps(report.as_dict())
