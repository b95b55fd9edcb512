"""Real test images made from the bundled assets (see tests/assets/README.md)."""

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

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


def drawn_face(size: int = 1200) -> Image.Image:
    """A face drawn from shapes (skin-toned oval, eyes with pupils, brows, nose, mouth, hair) on
    a plain background, softened like a camera would. The face detector finds it, it passes
    every photo check at 800 px and up, and it is nobody's likeness."""
    image = Image.new("RGB", (size, size), (70, 90, 120))
    draw = ImageDraw.Draw(image)
    cx, cy, w, h = size / 2, size / 2, size * 0.32, size * 0.42
    draw.ellipse((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), fill=(224, 180, 150))
    for side in (-1, 1):
        ex, ey = cx + side * w * 0.22, cy - h * 0.1
        draw.ellipse((ex - w * 0.1, ey - h * 0.04, ex + w * 0.1, ey + h * 0.04), fill=(250, 250, 250))
        draw.ellipse((ex - w * 0.045, ey - h * 0.04, ex + w * 0.045, ey + h * 0.04), fill=(40, 30, 30))
        draw.rectangle((ex - w * 0.13, ey - h * 0.13, ex + w * 0.13, ey - h * 0.09), fill=(60, 40, 30))
    draw.polygon(
        [(cx, cy - h * 0.05), (cx - w * 0.07, cy + h * 0.12), (cx + w * 0.07, cy + h * 0.12)], fill=(190, 140, 115)
    )
    draw.ellipse((cx - w * 0.18, cy + h * 0.2, cx + w * 0.18, cy + h * 0.27), fill=(150, 60, 60))
    draw.rectangle((cx - w * 0.55, cy - h * 0.62, cx + w * 0.55, cy - h * 0.38), fill=(50, 35, 25))
    return image.filter(ImageFilter.GaussianBlur(size / 600))
