"""Dashboard and wizard pages under load: gunicorn (2 sync workers) on loopback, SQLite and
PostgreSQL, users with 1, 100 and 1000 jobs / media assets / usage rows. Each page's p95 is
compared with a bare Django view served by the same server in the same round, and each page's
query count (in-process, CaptureQueriesContext) must not grow with the rows.

    .venv/bin/python bench/pages_load.py [--quick] [--sqlite-only]
"""

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import benchlib
import requests
from benchlib import BenchDatabase, Gunicorn, Report, median, p95

LEVELS = (1, 100, 1000)
CONCURRENCY = 8
REQUESTS_PER_BATCH = 80
ROUNDS = 3
TARGET_RATIO = 3.0
BARE = "bare view (baseline)"
LAYOUT = "site layout only (login + base.html)"


def seed_and_count(env: dict, levels: tuple[int, ...]) -> dict:
    """In a child: seed one user per level, then count each page's queries with the test client."""
    benchlib.setup_django(env)
    import seed
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    users, counts, times = {}, {}, {}
    for rows in levels:
        users[rows] = seed.seed_user(f"bench{rows}", rows)
    for rows, info in users.items():
        client = Client()
        client.cookies["sessionid"] = info["session"]
        for name, (path, headers) in seed.pages(info["persona_id"]).items():
            client.get(path, headers=headers)  # warm caches (templates, content types)
            with CaptureQueriesContext(connection) as queries:
                response = client.get(path, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code} for {rows} rows")
            counts.setdefault(name, {})[rows] = len(queries)
            spent = [benchlib.timed(client.get, path, headers=headers)[0] for _ in range(9)]
            times.setdefault(name, {})[rows] = median(spent) * 1000
    return {"users": users, "counts": counts, "times": times}


def load(url: str, session_id: str, path: str, headers: dict, total: int, concurrency: int) -> dict:
    """`total` GETs from `concurrency` threads, each with its own keep-alive session."""
    latencies, errors = [], []
    lock = threading.Lock()
    local = threading.local()
    remaining = iter(range(total))

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.cookies.set("sessionid", session_id)
            local.session.headers.update(headers)
        return local.session

    def worker():
        s = session()
        while True:
            with lock:
                if next(remaining, None) is None:
                    return
            started = time.perf_counter()
            try:
                response = s.get(url + path, timeout=60, allow_redirects=False)
                status = response.status_code
            except requests.RequestException as exc:
                status = repr(exc)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if status != 200:
                    errors.append(status)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for _ in range(concurrency):
            pool.submit(worker)
    wall = time.perf_counter() - started
    return {"latencies": latencies, "errors": errors, "rps": total / wall}


def measure_server(db: BenchDatabase, users: dict, rounds: int, per_batch: int) -> dict:
    import seed

    results = {}
    with Gunicorn(db.env(), workers=2) as server:
        for rows, info in users.items():
            page_list = seed.pages(info["persona_id"])
            for path, headers in page_list.values():  # warm both workers
                load(server.url, info["session"], path, headers, 4, 2)
            for _ in range(rounds):
                for name, (path, headers) in page_list.items():
                    r = load(server.url, info["session"], path, headers, per_batch, CONCURRENCY)
                    entry = results.setdefault((rows, name), {"p50": [], "p95": [], "rps": [], "errors": []})
                    entry["p50"].append(median(r["latencies"]))
                    entry["p95"].append(p95(r["latencies"]))
                    entry["rps"].append(r["rps"])
                    entry["errors"] += r["errors"]
        log = server.errors()
    return {"results": results, "server_log": log[-2000:]}


def run(quick: bool = False, kinds: tuple[str, ...] = ("sqlite", "postgres")) -> Report:
    report = Report("Pages under load (gunicorn, 2 workers)")
    rounds = 1 if quick else ROUNDS
    per_batch = 40 if quick else REQUESTS_PER_BATCH
    for kind in kinds:
        label = "SQLite" if kind == "sqlite" else "PostgreSQL"
        with BenchDatabase(kind, "pages") as db:
            seeded = benchlib.in_child(seed_and_count, db.env(), LEVELS)
            measured = measure_server(db, seeded["users"], rounds, per_batch)
        counts, times = seeded["counts"], seeded["times"]
        report.table(
            f"{label}: queries per page and in-process time (test client, one at a time, median of 9 ms) "
            "by rows per user",
            ["page", *[f"queries {n}" for n in LEVELS], "constant", *[f"ms {n}" for n in LEVELS]],
            [
                [name, *[c[n] for n in LEVELS], len(set(c.values())) == 1, *[times[name][n] for n in LEVELS]]
                for name, c in counts.items()
            ],
        )
        growing = [name for name, c in counts.items() if len(set(c.values())) != 1]
        report.check(
            f"{label}: query count constant at 1/100/1000 rows",
            "constant",
            "constant" if not growing else "grows: " + ", ".join(growing),
            not growing,
        )
        rows_out, worst, worst_layout, errors = [], (0.0, ""), (0.0, ""), 0
        results = measured["results"]
        for (rows, name), e in results.items():
            ratio = median(e["p95"]) / median(results[(rows, BARE)]["p95"])
            layout_ratio = median(e["p95"]) / median(results[(rows, LAYOUT)]["p95"])
            errors += len(e["errors"])
            if name not in (BARE, LAYOUT):
                worst = max(worst, (ratio, f"{name}, {rows} rows"))
                worst_layout = max(worst_layout, (layout_ratio, f"{name}, {rows} rows"))
            rows_out.append(
                [
                    rows,
                    name,
                    median(e["p50"]) * 1000,
                    median(e["p95"]) * 1000,
                    ratio,
                    layout_ratio,
                    median(e["rps"]),
                    len(e["errors"]),
                ]
            )
        report.table(
            f"{label}: {CONCURRENCY} concurrent clients, {per_batch} requests per batch, median of {rounds} rounds",
            ["rows", "page", "p50 ms", "p95 ms", "p95 / bare", "p95 / layout", "req/s", "errors"],
            rows_out,
        )
        report.check(
            f"{label}: worst page p95 / bare view p95",
            f"<= {TARGET_RATIO:g}x",
            f"{worst[0]:.1f}x ({worst[1]})",
            worst[0] <= TARGET_RATIO,
        )
        report.check(
            f"{label}: worst page p95 / site-layout page p95",
            "(info)",
            f"{worst_layout[0]:.1f}x ({worst_layout[1]})",
            None,
        )
        report.check(f"{label}: errors under load", "0", str(errors), errors == 0)
        if errors:
            report.notes.append(f"{label} server log tail: {measured['server_log']}")
    return report


if __name__ == "__main__":
    benchlib.main(lambda quick: run(quick, ("sqlite",) if "--sqlite-only" in sys.argv else ("sqlite", "postgres")))
