"""Real test images made from the bundled assets (see tests/assets/README.md)."""

import io
from pathlib import Path

from PIL import Image, ImageFilter

ASSETS = Path(__file__).parent / "assets"


def astronaut(size: int = 1200) -> Image.Image:
    """The bundled portrait, upscaled so the face is about 225 px tall at the default size."""
    with Image.open(ASSETS / "astronaut.png") as image:
        return image.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)


def coffee(size: int = 900) -> Image.Image:
    with Image.open(ASSETS / "coffee.png") as image:
        return image.convert("RGB").resize((size, size * 2 // 3), Image.Resampling.LANCZOS)


def two_astronauts() -> Image.Image:
    one = astronaut()
    pair = Image.new("RGB", (one.width * 2, one.height))
    pair.paste(one, (0, 0))
    pair.paste(one, (one.width, 0))
    return pair


def blurred(image: Image.Image, radius: float = 6) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius))


def scaled_brightness(image: Image.Image, factor: float) -> Image.Image:
    return image.point(lambda v: min(255, round(v * factor)))


def encode(image: Image.Image, image_format: str = "JPEG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, image_format, **options)
    return out.getvalue()


def write(tmp_path: Path, name: str, data: bytes | Image.Image, image_format: str = "JPEG", **options) -> str:
    """Write bytes, or an image encoded as `image_format`, under any name; returns the path."""
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else encode(data, image_format, **options))
    return str(path)
