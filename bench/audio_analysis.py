"""Sample analysis of a 3-minute mp3 (decode + every quality metric) against PyAV decoding the
same file alone (the floor), and the peak memory of the analysis.

    .venv/bin/python bench/audio_analysis.py [--quick]
"""

import os
import tempfile

import benchlib
from benchlib import Report, median, timed

SECONDS = 180
RUNS = 7
TARGET_RATIO = 5.0
TARGET_PEAK_MB = 200.0


def make_mp3(folder: str) -> str:
    from tests.media_factory import encode, speech_wav

    path = os.path.join(folder, "sample-3min.mp3")
    with open(path, "wb") as f:
        f.write(encode(speech_wav(SECONDS), "mp3"))
    return path


def _setup() -> None:
    benchlib.setup_django(benchlib.bench_env(database_url="sqlite:///:memory:", media_root=tempfile.gettempdir()))


def decode_only(path: str) -> int:
    import av

    samples = 0
    with av.open(path) as container:
        for frame in container.decode(audio=0):
            samples += frame.samples
    return samples


def timings(path: str, runs: int) -> dict:
    """Floor and analysis interleaved, so both see the same machine state."""
    _setup()
    from media_pipeline import audio

    decode_only(path), audio.analyse_sample(path)  # warm: imports, codec tables, FFT plans
    floor, analysis = [], []
    report = None
    for _ in range(runs):
        floor.append(timed(decode_only, path)[0])
        seconds, report = timed(audio.analyse_sample, path)
        analysis.append(seconds)
    return {"floor": floor, "analysis": analysis, "report": report.as_dict()}


def peak_memory(path: str, work: str) -> dict:
    """In a fresh interpreter: RSS after imports, then the peak while doing `work` once."""
    _setup()
    import av  # noqa: F401
    import numpy  # noqa: F401

    from media_pipeline import audio

    baseline = benchlib.rss_mb()
    benchlib.reset_peak_rss()
    if work == "analysis":
        audio.analyse_sample(path)
    else:
        decode_only(path)
    return {"baseline_mb": baseline, "peak_mb": benchlib.peak_rss_mb()}


def run(quick: bool = False) -> Report:
    report = Report("Sample analysis (3-min mp3)")
    runs = 3 if quick else RUNS
    with tempfile.TemporaryDirectory() as folder:
        path = make_mp3(folder)
        size_mb = os.path.getsize(path) / 2**20
        t = benchlib.in_child(timings, path, runs)
        mem_analysis = benchlib.in_child(peak_memory, path, "analysis")
        mem_floor = benchlib.in_child(peak_memory, path, "decode")
    floor, analysis = median(t["floor"]), median(t["analysis"])
    ratio = analysis / floor
    metrics = t["report"]["metrics"]
    report.table(
        f"Sample analysis: {SECONDS} s speech, mp3 {size_mb:.1f} MB, median of {runs} runs (interleaved)",
        ["step", "median s", "min s", "max s", "x floor", "peak RSS MB", "RSS growth MB"],
        [
            [
                "PyAV decode alone (floor)",
                floor,
                min(t["floor"]),
                max(t["floor"]),
                1.0,
                mem_floor["peak_mb"],
                mem_floor["peak_mb"] - mem_floor["baseline_mb"],
            ],
            [
                "analyse_sample (decode + all metrics)",
                analysis,
                min(t["analysis"]),
                max(t["analysis"]),
                ratio,
                mem_analysis["peak_mb"],
                mem_analysis["peak_mb"] - mem_analysis["baseline_mb"],
            ],
        ],
    )
    report.notes.append(
        f"report metrics: duration {metrics.get('duration_seconds')} s, SNR {metrics.get('snr_db')} dB, "
        f"speech {metrics.get('speech_ratio')}, F0 {metrics.get('f0_median_hz')} Hz, "
        f"{metrics.get('loudness_lufs')} LUFS; peak RSS is the whole process (Django, NumPy, PyAV "
        f"loaded: {mem_analysis['baseline_mb']:.0f} MB before the work)"
    )
    report.check("analysis / decode floor", f"<= {TARGET_RATIO:g}x", f"{ratio:.2f}x", ratio <= TARGET_RATIO)
    report.check(
        "peak RSS of the analysing process",
        f"< {TARGET_PEAK_MB:g} MB",
        f"{mem_analysis['peak_mb']:.0f} MB",
        mem_analysis["peak_mb"] < TARGET_PEAK_MB,
    )
    return report


if __name__ == "__main__":
    benchlib.main(run)
