"""Offline voice synthesis of 300 words against the duration of the audio it makes.

.venv/bin/python bench/voice_synthesis.py [--quick]
"""

import tempfile

import benchlib
from benchlib import Report, median, timed

RUNS = 7
TARGET_REALTIME = 500.0
PROFILE = {"f0_median_hz": 112.0, "speaking_rate_sps": 4.4}
BASE_TEXT = (
    "When I sit down to write, I start with a question that matters to the reader. Then I gather "
    "three or four facts, test each one against what I already know, and throw away anything that "
    "does not help the story. Good writing is mostly rewriting. My first draft is always too long, "
    "so I cut it by a third and read it aloud before I publish. Short sentences keep things moving; "
    "longer ones, used now and then, give an idea room to breathe. I try to be clear, honest and a "
    "little curious, and I want every piece to sound like me. "
)


def words(count: int) -> str:
    pool = BASE_TEXT.split()
    return " ".join(pool[i % len(pool)] for i in range(count))


def _setup() -> None:
    benchlib.setup_django(benchlib.bench_env(database_url="sqlite:///:memory:", media_root=tempfile.gettempdir()))


def measure(text: str, runs: int) -> dict:
    _setup()
    from media_pipeline import espeak
    from media_pipeline.providers.local import OfflineVoiceProvider, espeak_params

    provider = OfflineVoiceProvider()
    # Cold: the first call in a process measures espeak once per voice (cached afterwards).
    cold, result = timed(provider.synthesize, text, voice_id="", profile=PROFILE)
    params = espeak_params(PROFILE)
    full, engine = [], []
    for _ in range(runs):
        full.append(timed(provider.synthesize, text, voice_id="", profile=PROFILE)[0])
        engine.append(timed(espeak.synthesize, text, **params)[0])
    return {
        "cold": cold,
        "full": full,
        "engine": engine,
        "duration": result.duration_seconds,
        "bytes": len(result.audio),
    }


def run(quick: bool = False) -> Report:
    report = Report("Offline voice synthesis (300 words)")
    runs = 3 if quick else RUNS
    text = words(300)
    m = benchlib.in_child(measure, text, runs)
    duration = m["duration"]
    full, engine = median(m["full"]), median(m["engine"])
    report.table(
        f"Offline voice: 300 words -> {duration:.1f} s of speech (WAV {m['bytes'] / 2**20:.1f} MB), median of {runs}",
        ["step", "median s", "min s", "x real time"],
        [
            ["espeak-ng engine alone", engine, min(m["engine"]), duration / engine],
            ["OfflineVoiceProvider.synthesize", full, min(m["full"]), duration / full],
            ["first call in a process (calibration)", m["cold"], m["cold"], duration / m["cold"]],
        ],
    )
    report.notes.append(
        "the first synthesis in a worker process also calibrates espeak for the voice (cached per process); "
        "it is shown separately and not part of the steady-state figure"
    )
    speed = duration / full
    report.check("synthesis speed (steady state)", f">= {TARGET_REALTIME:g}x real time", f"{speed:.0f}x", speed >= 500)
    return report


if __name__ == "__main__":
    benchlib.main(run)
