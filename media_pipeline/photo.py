"""Photo intake: read an upload safely, judge it as an avatar source, and make the two files we
keep: an EXIF-free JPEG and the square portrait that avatar providers receive.

The format is decided by the file's content, never its name. Every problem becomes a check with
a message that tells the user what to do; nothing here raises for a bad upload."""

import io
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cache

import cv2
import numpy as np
from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

# iPhones save HEIC by default. Thumbnails, depth maps and auxiliary images are never used.
register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

# Phones often write JPEGs with a second image (depth map, other lens, preview) appended: Pillow
# calls these MPO. HEIC files may hold several images too. Both are read as their primary image.
MULTI_IMAGE_FORMATS = {"MPO", "HEIF"}
ACCEPTED_FORMATS = {"JPEG", "PNG", "WEBP"} | MULTI_IMAGE_FORMATS
ACCEPTED_NAMES = "a JPEG, PNG, WebP or HEIC"
HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif"}
DETECT_SIDE = 640  # faces are found on a copy this size: fast, and fewer false hits in textures
# analyse_photo looks first on a smaller copy: the Haar search costs about (copy side / smallest
# face)^2, and on a 12 MP photo the 640 px search alone took as long as three full decodes. The
# small copy finds faces down to about 6% of the photo's long side (240 px in a 12 MP photo);
# only when it finds none is the photo searched again at DETECT_SIDE for smaller faces.
ANALYSIS_DETECT_SIDE = 400
HAAR_WINDOW = 24  # the cascade's own window: it finds nothing smaller
# The largest copy searched when counting the people beside a small face in a large photo.
COUNT_DETECT_SIDE = 2 * DETECT_SIDE
SHARPNESS_SIDE = 160  # faces are scored at one size so the score does not depend on the resolution
SANITISED_SIDE = 2048
# portrait_crop frames the face so it is 1/PORTRAIT_ZOOM of the square, its centre
# PORTRAIT_DROP face heights above the square's centre, leaving room for the shoulders.
PORTRAIT_ZOOM = 2.4
PORTRAIT_DROP = 0.2


class PhotoRejected(Exception):
    """The file cannot be used as a photo at all; the message says what to do."""


@dataclass
class Check:
    name: str
    level: str  # "ok", "warning" or "error"
    message: str


@dataclass
class LoadedPhoto:
    """A photo decoded once, upright, in RGB, with its detected format. `image` may be the
    decoder's own image (a plain RGB copy would cost a 12 MP copy for nothing), so it carries no
    metadata but must not be changed in place: the files we keep are always new images."""

    image: Image.Image
    format: str


@dataclass
class PhotoReport:
    metrics: dict
    checks: list[Check] = field(default_factory=list)
    # The decoded photo, so the worker's sanitised copy and portrait crop do not decode it again.
    photo: LoadedPhoto | None = field(default=None, repr=False, compare=False)

    @property
    def errors(self) -> list[Check]:
        return [c for c in self.checks if c.level == "error"]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.level == "warning"]

    @property
    def face_box(self) -> list[int] | None:
        return self.metrics.get("face_box")

    def as_dict(self) -> dict:
        return {
            "metrics": self.metrics,
            "checks": [asdict(c) for c in self.checks],
            "errors": [asdict(c) for c in self.errors],
            "warnings": [asdict(c) for c in self.warnings],
        }


def load_photo(path: str) -> tuple[Image.Image, str]:
    """The photo upright, in RGB, with none of the upload's metadata, and its detected format."""
    return _decode_upright(path, _plain_rgb)


def open_photo(path: str) -> LoadedPhoto:
    """What load_photo gives, without copying a photo that was decoded as plain RGB already."""
    return LoadedPhoto(*_decode_upright(path, _rgb_in_place))


def _decode_upright(path: str, to_rgb: Callable[[Image.Image], Image.Image]) -> tuple[Image.Image, str]:
    with open(path, "rb") as f:
        head = f.read(32)
    if not head:
        raise PhotoRejected("The file is empty; please upload the photo again.")
    max_pixels = settings.PHOTO_LIMITS["max_pixels"]
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.format not in ACCEPTED_FORMATS:
                    raise PhotoRejected(f"{image.format} images are not supported; upload {ACCEPTED_NAMES} photo.")
                # The open frame of an MPO or HEIF is its primary image: the photo itself.
                if image.format not in MULTI_IMAGE_FORMATS and getattr(image, "is_animated", False):
                    raise PhotoRejected("Animated images are not supported; upload a still photo.")
                image.load()
                ImageOps.exif_transpose(image, in_place=True)
                return to_rgb(image), image.format
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoRejected(f"The photo is too large; use one under {max_pixels // 1_000_000} megapixels.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, RuntimeError) as exc:
        if head[4:8] == b"ftyp" and head[8:12] in HEIC_BRANDS:
            # libheif refuses damaged files and the HEIF variants it cannot decode (AVIF) alike.
            raise PhotoRejected("This HEIC photo cannot be read; export it as JPEG and upload that.") from None
        if isinstance(exc, UnidentifiedImageError):
            raise PhotoRejected(f"This file is not a photo we can read; upload {ACCEPTED_NAMES} image.") from None
        # Pillow reports truncated and corrupt data this way.
        raise PhotoRejected("The photo file is damaged or incomplete; export it again and upload it.") from None


def _rgb_in_place(image: Image.Image) -> Image.Image:
    if image.mode == "RGB" and "transparency" not in image.info:
        image.info = {}  # as in _plain_rgb: nothing from the upload's metadata is carried over
        return image
    return _plain_rgb(image)


def _plain_rgb(image: Image.Image) -> Image.Image:
    if image.mode.startswith("I"):
        # 16-bit greyscale: keep the top 8 bits (a plain convert clips most of it to white).
        image = Image.fromarray((np.asarray(image).astype(np.uint32) >> 8).clip(0, 255).astype(np.uint8))
    if "A" in image.getbands() or "transparency" in image.info:
        # Transparent areas become white, not whatever colour the hidden pixels hold.
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    rgb = image.convert("RGB")
    rgb.info = {}  # nothing from the upload's metadata (EXIF, GPS, comments) is carried over
    return rgb


@cache
def _face_cascade() -> cv2.CascadeClassifier:
    return cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


def find_faces(grey: np.ndarray) -> list[list[int]]:
    """Frontal faces as [x, y, w, h] in `grey`'s pixels, largest first."""
    scale = min(1.0, DETECT_SIDE / max(grey.shape))
    small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else grey
    return _faces_in_copy(small, scale)


def _faces_in_copy(small: np.ndarray, scale: float, min_height: float = 0) -> list[list[int]]:
    """Faces found in `small`, a copy of a photo at `scale`, as boxes in the photo's pixels; none
    under `min_height` photo pixels tall are looked for."""
    window = max(HAAR_WINDOW, round(min_height * scale))
    found = _face_cascade().detectMultiScale(small, scaleFactor=1.15, minNeighbors=6, minSize=(window, window))
    boxes = sorted(([round(v / scale) for v in box] for box in found), key=lambda b: -b[3])
    # Haar's false hits are small patches of texture; anyone else who matters in the photo is
    # close to the camera, so their face is of a similar size.
    return [b for b in boxes if b[3] >= 0.4 * boxes[0][3]]


def _detection_copy(image: Image.Image, side: int) -> tuple[np.ndarray, float]:
    """A grey copy of `image` whose longer side is at most `side`, and its scale. Pillow's
    integer box reduction does most of the shrinking: far cheaper than a 12 MP grey copy."""
    scale = min(1.0, side / max(image.size))
    if scale == 1:
        return np.asarray(image.convert("L")), scale
    size = (round(image.width * scale), round(image.height * scale))
    reduced = image.reduce(max(1, int(1 / scale))) if scale < 0.5 else image
    grey = np.asarray(reduced.convert("L"))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA), scale


def _photo_faces(image: Image.Image, *, min_height: float) -> list[list[int]]:
    side = max(image.size)
    copy_side = ANALYSIS_DETECT_SIDE
    faces = _faces_in_copy(*_detection_copy(image, copy_side), min_height)
    if not faces and side > copy_side:
        copy_side = DETECT_SIDE
        faces = _faces_in_copy(*_detection_copy(image, copy_side), min_height)
    if faces and side > copy_side:
        # Another face counts from 0.4 of the largest one's height (see _faces_in_copy). When the
        # copy was too small to show a face that size, count again on one that can: a second
        # person further back must still make this a two-face photo.
        # The recount shows such a face at 1.5 windows: right at the window, Haar misses many.
        counted = max(min_height, 0.4 * faces[0][3])
        if counted < HAAR_WINDOW * side / copy_side:
            recount_side = min(math.ceil(side * 1.5 * HAAR_WINDOW / counted), COUNT_DETECT_SIDE)
            faces = _faces_in_copy(*_detection_copy(image, recount_side), counted) or faces
    return faces


def analyse_photo(path: str) -> PhotoReport:
    """Judge the photo as an avatar source. The report keeps the decoded photo (`report.photo`)
    for sanitised_jpeg and portrait_crop."""
    try:
        loaded = open_photo(path)
    except PhotoRejected as exc:
        unknown = dict.fromkeys(["width", "height", "format", "face_box", "sharpness", "brightness"])
        return PhotoReport({**unknown, "face_count": 0}, [Check("file", "error", str(exc))])
    limits = settings.PHOTO_LIMITS
    image = loaded.image
    width, height = image.size
    faces = _photo_faces(image, min_height=limits["min_face_height"] / 2)  # smaller ones are refused anyway
    face = faces[0] if faces else None
    x, y, w, h = face or (0, 0, width, height)
    # Only the face is needed in grey at full resolution (the box may reach a pixel past the edge).
    region = np.asarray(image.crop((x, y, min(x + w, width), min(y + h, height))).convert("L"))
    brightness = float(region.mean())
    metrics = {
        "width": width,
        "height": height,
        "format": loaded.format,
        "face_box": face,
        "face_count": len(faces),
        "sharpness": round(_sharpness(region), 1) if face else None,
        "brightness": round(brightness, 1),
    }
    checks = [_size_check(width, height, limits["min_side"]), _face_count_check(len(faces))]
    if face:
        checks.append(_face_size_check(h, limits["min_face_height"]))
        checks.append(_sharpness_check(metrics["sharpness"], limits["min_sharpness"]))
    # Exposure is judged on the whole photo when no face is found: darkness may be why.
    checks.append(_exposure_check(brightness, limits["min_brightness"], limits["max_brightness"]))
    return PhotoReport(metrics, checks, photo=loaded)


def _sharpness(region: np.ndarray) -> float:
    """Variance of the Laplacian: edges give it a high value, blur a low one. The face is first
    stretched to the full tonal range, so a dark photo is not also called blurry."""
    scale = SHARPNESS_SIDE / region.shape[0]
    resized = cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA).astype(np.float64)
    low, high = np.percentile(resized, [1, 99])
    stretched = (resized - low) * (255 / max(high - low, 1.0))
    return float(cv2.Laplacian(stretched, cv2.CV_64F).var())


def _size_check(width: int, height: int, min_side: int) -> Check:
    if min(width, height) < min_side:
        return Check(
            "size",
            "error",
            f"The photo is {width}x{height} px; its shorter side must be at least {min_side} px: use a larger photo.",
        )
    return Check("size", "ok", f"The photo is {width}x{height} px.")


def _face_count_check(count: int) -> Check:
    if count == 0:
        return Check(
            "face",
            "error",
            "We could not find a face. Use a photo where you look at the camera with nothing covering your face.",
        )
    if count > 1:
        return Check("face", "error", f"We found {count} faces; use a photo with only you in it.")
    return Check("face", "ok", "We found your face.")


def _face_size_check(face_height: int, min_height: int) -> Check:
    if face_height < min_height:
        return Check(
            "face_size",
            "error",
            f"Your face is {face_height} px tall; it must be at least {min_height} px: use a closer or larger photo.",
        )
    return Check("face_size", "ok", f"Your face is {face_height} px tall.")


def _sharpness_check(sharpness: float, minimum: float) -> Check:
    if sharpness < minimum / 2:
        return Check("sharpness", "error", "The photo is blurry; use a sharp photo, taken with a steady camera.")
    if sharpness < minimum:
        return Check("sharpness", "warning", "The photo is a little soft; a sharper photo gives a better avatar.")
    return Check("sharpness", "ok", "The photo is sharp.")


def _exposure_check(brightness: float, minimum: float, maximum: float) -> Check:
    if brightness < minimum:
        return Check("exposure", "error", "The photo is too dark; take it facing a window or a lamp.")
    if brightness > maximum:
        return Check("exposure", "error", "The photo is too bright; avoid direct sun or flash on your face.")
    return Check("exposure", "ok", "The lighting is good.")


def _photo(source: str | LoadedPhoto) -> Image.Image:
    return source.image if isinstance(source, LoadedPhoto) else load_photo(source)[0]


def sanitised_jpeg(source: str | LoadedPhoto) -> bytes:
    """The photo (a path, or analyse_photo's `report.photo`) upright, at most SANITISED_SIDE px,
    re-encoded so no EXIF (GPS!) survives."""
    image = _photo(source)
    if max(image.size) > SANITISED_SIDE:
        image = image.copy()  # thumbnail works in place; the loaded photo is used again after this
        image.thumbnail((SANITISED_SIDE, SANITISED_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, optimize=True)
    return out.getvalue()


def portrait_crop(source: str | LoadedPhoto, report: PhotoReport) -> bytes:
    """A square PNG of head and shoulders, centred on the face: what avatar providers receive.
    `source` is the photo's path or analyse_photo's `report.photo`."""
    image = _photo(source)
    width, height = image.size
    x, y, w, h = report.face_box
    side = min(round(h * PORTRAIT_ZOOM), width, height)
    centre_x = x + w / 2
    centre_y = y + h / 2 + h * PORTRAIT_DROP
    left = int(np.clip(round(centre_x - side / 2), 0, width - side))
    top = int(np.clip(round(centre_y - side / 2), 0, height - side))
    size = settings.PHOTO_LIMITS["portrait_size"]
    portrait = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    portrait.save(out, "PNG")
    return out.getvalue()


def portrait_face_box(size: int) -> list[int]:
    """Where portrait_crop puts the face in a portrait of `size` px (when the photo allowed it)."""
    h = round(size / PORTRAIT_ZOOM)
    return [round((size - h) / 2), round(size / 2 - h * PORTRAIT_DROP - h / 2), h, h]
