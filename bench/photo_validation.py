"""Photo validation of a 12 MP JPEG against Pillow opening and decoding the same file alone.

.venv/bin/python bench/photo_validation.py [--quick]
"""

import os
import tempfile

import benchlib
from benchlib import Report, median, timed

WIDTH, HEIGHT = 3000, 4000  # 12 MP, a phone's portrait photo
RUNS = 7
TARGET_RATIO = 3.0


def make_jpeg(folder: str) -> str:
    import numpy as np
    from PIL import Image

    path = os.path.join(folder, "photo-12mp.jpg")
    with Image.open(benchlib.ROOT / "tests" / "assets" / "astronaut.png") as image:
        big = image.convert("RGB").resize((HEIGHT, HEIGHT), Image.Resampling.LANCZOS)
    left = (HEIGHT - WIDTH) // 2
    exif = Image.Exif()
    exif[0x0112] = 1  # orientation: as phones write it
    exif[0x010F] = "BenchCam"
    pixels = np.asarray(big.crop((left, 0, left + WIDTH, HEIGHT)), dtype=np.int16)
    # Sensor grain, so the file has a camera's detail (and size) rather than an upscale's smoothness.
    grain = np.random.default_rng(12).normal(0, 4, pixels.shape).astype(np.int16)
    Image.fromarray(np.clip(pixels + grain, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=92, exif=exif)
    return path


def pillow_load(path: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return image.size


def measure(path: str, runs: int, folder: str) -> dict:
    benchlib.setup_django(benchlib.bench_env(database_url="sqlite:///:memory:", media_root=folder))
    from media_pipeline import photo

    def worker_step():
        # As services.run_photo_check does: the photo is decoded once, by analyse_photo.
        report = photo.analyse_photo(path)
        photo.sanitised_jpeg(report.photo)
        photo.portrait_crop(report.photo, report)
        return report

    pillow_load(path), worker_step()  # warm: imports, the face cascade
    times = {"floor": [], "analyse": [], "worker_step": []}
    report = None
    for _ in range(runs):
        times["floor"].append(timed(pillow_load, path)[0])
        seconds, report = timed(photo.analyse_photo, path)
        times["analyse"].append(seconds)
        times["worker_step"].append(timed(worker_step)[0])
    return times | {"report": report.as_dict()}


def peak_memory(path: str, folder: str, work: str) -> dict:
    benchlib.setup_django(benchlib.bench_env(database_url="sqlite:///:memory:", media_root=folder))
    from media_pipeline import photo

    photo._face_cascade()
    baseline = benchlib.rss_mb()
    benchlib.reset_peak_rss()
    if work == "analyse":
        photo.analyse_photo(path)
    else:
        pillow_load(path)
    return {"baseline_mb": baseline, "peak_mb": benchlib.peak_rss_mb()}


def run(quick: bool = False) -> Report:
    report = Report("Photo validation (12 MP JPEG)")
    runs = 3 if quick else RUNS
    with tempfile.TemporaryDirectory() as folder:
        path = make_jpeg(folder)
        size_mb = os.path.getsize(path) / 2**20
        m = benchlib.in_child(measure, path, runs, folder)
        mem_a = benchlib.in_child(peak_memory, path, folder, "analyse")
        mem_f = benchlib.in_child(peak_memory, path, folder, "floor")
    floor, analyse, step = median(m["floor"]), median(m["analyse"]), median(m["worker_step"])
    report.table(
        f"Photo: {WIDTH}x{HEIGHT} JPEG ({size_mb:.1f} MB), median of {runs} runs (interleaved)",
        ["step", "median s", "min s", "x floor", "RSS growth MB"],
        [
            [
                "Pillow open + load (floor)",
                floor,
                min(m["floor"]),
                1.0,
                mem_f["peak_mb"] - mem_f["baseline_mb"],
            ],
            [
                "analyse_photo (validation)",
                analyse,
                min(m["analyse"]),
                analyse / floor,
                mem_a["peak_mb"] - mem_a["baseline_mb"],
            ],
            ["worker step: analyse + sanitised_jpeg + portrait_crop", step, min(m["worker_step"]), step / floor, ""],
        ],
    )
    metrics = m["report"]["metrics"]
    report.notes.append(
        f"face box {metrics.get('face_box')}, sharpness {metrics.get('sharpness')}, "
        f"errors {[c['name'] for c in m['report']['errors']]}"
    )
    ratio = analyse / floor
    report.check("analyse_photo / Pillow open+load", f"<= {TARGET_RATIO:g}x", f"{ratio:.2f}x", ratio <= TARGET_RATIO)
    report.check("whole photo-check step / Pillow open+load", "(info)", f"{step / floor:.2f}x", None)
    return report


if __name__ == "__main__":
    benchlib.main(run)
