"""Upload memory: POST a 2 MB and a 20 MB voice sample to the wizard's upload view on gunicorn
and measure the worker's peak RSS growth during the request (one sync worker, so the measured
process is the one that served the request, warmed up first so lazy imports are not counted).

Two cases per size: the real upload (parsed, stored encrypted, check job queued) and a refused
one (same body, a file type the form rejects), which isolates request parsing (streamed to a
temporary file by FILE_UPLOAD_HANDLERS) from storing.

    .venv/bin/python bench/upload_memory.py [--quick]
"""

import os

import benchlib
import requests
from benchlib import BenchDatabase, Gunicorn, Report, median

SIZES_MB = (2, 20)
RUNS = 3
TARGET_EXTRA_MB = 5.0  # growth of the 20 MB upload over the 2 MB one


def seed_user(env: dict) -> dict:
    benchlib.setup_django(env)
    import seed

    return seed.seed_user("uploader", 1)


def sample_checks(env: dict) -> int:
    benchlib.setup_django(env)
    from media_pipeline.models import JobKind, MediaJob

    return MediaJob.objects.filter(kind=JobKind.SAMPLE_CHECK).count()


def post(server: Gunicorn, session: requests.Session, path: str, body: bytes, name: str) -> tuple[int, float]:
    workers = server.worker_pids()
    before = {pid: benchlib.rss_mb(pid) for pid in workers}
    for pid in workers:
        benchlib.reset_peak_rss(pid)
    response = session.post(
        server.url + path,
        files={"sample": (name, body, "audio/mpeg")},
        data={"consent": "on"},
        headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": server.url + path},
        allow_redirects=False,
        timeout=120,
    )
    growth = max(benchlib.peak_rss_mb(pid) - before[pid] for pid in workers)
    return response.status_code, growth


def run(quick: bool = False) -> Report:
    report = Report("Upload memory (gunicorn worker)")
    runs = 1 if quick else RUNS
    results = {}
    with BenchDatabase("sqlite") as db:
        info = benchlib.in_child(seed_user, db.env())
        path = f"/onboarding/persona/{info['persona_id']}/voice/sample/"
        with Gunicorn(db.env(), workers=1) as server:
            session = requests.Session()
            session.cookies.set("sessionid", info["session"])
            session.get(f"{server.url}/onboarding/persona/{info['persona_id']}/", timeout=30)  # CSRF cookie
            for name in ("warm.xyz", "warm.mp3"):  # warm both paths: imports, templates, storage
                post(server, session, path, os.urandom(100_000), name)
            for _ in range(runs):
                for size in SIZES_MB:
                    body = os.urandom(size * 1_000_000)
                    for case, name in (("parse only (refused type)", "sample.xyz"), ("stored upload", "sample.mp3")):
                        status, growth = post(server, session, path, body, name)
                        entry = results.setdefault((size, case), {"growth": [], "status": set()})
                        entry["growth"].append(growth)
                        entry["status"].add(status)
            log = server.errors()
        stored = benchlib.in_child(sample_checks, db.env())
    rows = [
        [f"{size} MB", case, median(e["growth"]), max(e["growth"]), sorted(e["status"])]
        for (size, case), e in results.items()
    ]
    report.table(
        f"Peak RSS growth of the gunicorn worker during one POST, median of {runs}",
        ["file", "case", "growth MB (median)", "growth MB (max)", "HTTP status"],
        rows,
    )
    report.notes.append(f"sample-check jobs queued by the stored uploads: {stored}")
    parse = median(results[(20, "parse only (refused type)")]["growth"]) - median(
        results[(2, "parse only (refused type)")]["growth"]
    )
    full = median(results[(20, "stored upload")]["growth"]) - median(results[(2, "stored upload")]["growth"])
    report.check(
        "request parsing: 20 MB vs 2 MB growth",
        f"< {TARGET_EXTRA_MB:g} MB more",
        f"{parse:+.1f} MB",
        parse < TARGET_EXTRA_MB,
    )
    report.check(
        "whole upload (parse + encrypted store): 20 MB vs 2 MB growth",
        f"< {TARGET_EXTRA_MB:g} MB more",
        f"{full:+.1f} MB",
        full < TARGET_EXTRA_MB,
    )
    if "Traceback" in log:
        report.notes.append("server log: " + log[-1500:])
    return report


if __name__ == "__main__":
    benchlib.main(run)
