"""Load test: 20 users at once go through the whole wizard on the live server (gunicorn, 2 sync
workers, loopback) with 2 database-queue workers and the offline providers, on a fresh SQLite
database with its own MEDIA_ROOT: sign up, content step, upload a voice sample and a photo (with
consent), train the voice, create the avatar, poll each section as the page does until done,
approve both and the persona, open the dashboard. Counts errors (any 5xx or unexpected status)
and lost jobs (not in a final state at the end).

    .venv/bin/python bench/wizard_load.py [--quick] [--users N]
"""

import io
import re
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import benchlib
import requests
from benchlib import BenchDatabase, Gunicorn, Report, median, p95

USERS = 20
DB_WORKERS = 2
POLL_SECONDS = 1.0  # the page polls every 2 s; faster here so the figures are about the server
TIMEOUT_SECONDS = 420
WRITING = (
    "Every Monday I write a short note for the people who read my newsletter. I start with a question "
    "that bothered me during the week, and I try to answer it with one story and a few numbers. "
    "I like plain words, short paragraphs and a clear ending. When I explain a hard idea, I use an "
    "everyday comparison, because readers remember pictures better than definitions. I avoid jargon; "
    "if a technical word is needed, I explain it the first time. My tone is warm but direct. I do not "
    "pretend to know everything, and I say so when I am unsure. I often end with a small thing the "
    "reader can try today. On LinkedIn I keep it to a few lines and one idea. On my blog I take my time, "
    "with headings, examples and a summary at the end. I read every draft aloud before I publish it, "
    "and I cut whatever sounds stiff or clever for its own sake. Good writing, for me, is mostly "
    "rewriting, and the best compliment is a reader who says it felt like a conversation."
)
FINAL = {"voice": {"ready", "approved", "failed", "candidate"}, "avatar": {"ready", "approved", "failed", "candidate"}}
CHECKED = {"checked", "warnings", "invalid"}
TASK_TABLE = "django_tasks_database_dbtaskresult"


def make_media() -> tuple[bytes, bytes]:
    from PIL import Image

    from tests.media_factory import encode, speech_wav

    sample = encode(speech_wav(75), "mp3")
    out = io.BytesIO()
    with Image.open(benchlib.ROOT / "tests" / "assets" / "astronaut.png") as image:
        image.convert("RGB").resize((1200, 1200), Image.Resampling.LANCZOS).save(out, "JPEG", quality=90)
    return sample, out.getvalue()


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.by_step: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.durations: list[float] = []


class WizardUser:
    def __init__(self, index: int, base: str, stats: Stats, media: tuple[bytes, bytes], db_path: str):
        self.name = f"loaduser{index}"
        self.base = base
        self.stats = stats
        self.sample, self.photo = media
        self.db_path = db_path
        self.s = requests.Session()

    def request(self, method: str, path: str, expect: tuple[int, ...], **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if method == "POST":
            headers = {"X-CSRFToken": self.s.cookies.get("csrftoken", ""), **headers}
        started = time.perf_counter()
        try:
            response = self.s.request(
                method, self.base + path, headers=headers, allow_redirects=False, timeout=120, **kwargs
            )
        except requests.RequestException as exc:
            with self.stats.lock:
                self.stats.errors.append(f"{self.name} {method} {path}: {exc!r}")
            raise
        elapsed = time.perf_counter() - started
        with self.stats.lock:
            self.stats.latencies.append(elapsed)
            step = f"{method} {re.sub(r'/\d+/', '/<id>/', path)}"
            self.stats.by_step.setdefault(step, []).append(elapsed)
            if response.status_code not in expect:
                self.stats.errors.append(f"{self.name} {method} {path}: HTTP {response.status_code}")
        if response.status_code not in expect:
            raise RuntimeError(f"{method} {path}: HTTP {response.status_code}")
        return response

    def section(self, persona: int, name: str) -> tuple[str, str]:
        html = self.request(
            "GET", f"/onboarding/persona/{persona}/{name}/", (200,), headers={"HX-Request": "true"}
        ).text
        match = re.search(r'data-state="([a-z_]+)"', html)
        return (match.group(1) if match else "?"), html

    def wait(self, persona: int, name: str, states: set[str], deadline: float) -> tuple[str, str]:
        while True:
            state, html = self.section(persona, name)
            if state in states:
                return state, html
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} still {state!r} at the deadline")
            time.sleep(POLL_SECONDS)

    def run(self) -> None:
        started = time.perf_counter()
        deadline = time.monotonic() + TIMEOUT_SECONDS
        self.request("GET", "/accounts/signup/", (200,))
        password = "correct horse battery staple 42"
        self.request(
            "POST",
            "/accounts/signup/",
            (302,),
            data={
                "username": self.name,
                "email": f"{self.name}@example.com",
                "password1": password,
                "password2": password,
            },
        )
        upgrade_to_pro(self.db_path, self.name)  # plans are bought elsewhere; Pro has voice and avatar
        self.request("GET", "/onboarding/content/", (200,))
        location = self.request(
            "POST",
            "/onboarding/content/",
            (302,),
            data={"brand_name": f"Brand {self.name}", "writing_samples": WRITING, "platforms": ["linkedin", "blog"]},
        ).headers["Location"]
        persona = int(re.search(r"/onboarding/persona/(\d+)/", location).group(1))
        self.request("GET", f"/onboarding/persona/{persona}/", (200,))
        self.request(
            "POST",
            f"/onboarding/persona/{persona}/voice/sample/",
            (302,),
            files={"sample": ("my-voice.mp3", self.sample, "audio/mpeg")},
            data={"consent": "on"},
        )
        self.request(
            "POST",
            f"/onboarding/persona/{persona}/avatar/photo/",
            (302,),
            files={"photo": ("me.jpg", self.photo, "image/jpeg")},
            data={"consent": "on"},
        )
        for name, action in (("voice", "train"), ("avatar", "create")):
            state, html = self.wait(persona, name, CHECKED, deadline)
            if state == "invalid":
                raise RuntimeError(f"{name} check refused the file")
            url = re.search(rf'action="(/onboarding/persona/{persona}/{name}/{action}/\d+/)"', html).group(1)
            self.request("POST", url, (302,), data={"accept_warnings": "on"})
        for name in ("voice", "avatar"):
            state, _ = self.wait(persona, name, FINAL[name], deadline)
            if state == "failed":
                raise RuntimeError(f"{name} training failed")
            self.request("POST", f"/onboarding/persona/{persona}/{name}/approve/", (302,))
        self.wait(persona, "style", {"done", "failed"}, deadline)
        self.request("GET", f"/onboarding/persona/{persona}/preview/", (200,))
        self.request("POST", f"/onboarding/persona/{persona}/approve/", (302,))
        self.request("GET", "/persona/", (200,))
        with self.stats.lock:
            self.stats.durations.append(time.perf_counter() - started)


def upgrade_to_pro(db_path: str, username: str) -> None:
    with sqlite3.connect(db_path, timeout=30) as conn:
        conn.execute(
            "UPDATE personas_subscription SET tier = 'pro' "
            "WHERE user_id = (SELECT id FROM auth_user WHERE username = ?)",
            (username,),
        )


def final_state(db_path: str) -> dict:
    with sqlite3.connect(db_path, timeout=30) as conn:
        jobs = dict(conn.execute("SELECT status, COUNT(*) FROM media_pipeline_mediajob GROUP BY status").fetchall())
        tasks = dict(conn.execute(f"SELECT status, COUNT(*) FROM {TASK_TABLE} GROUP BY status").fetchall())
        kinds = conn.execute(
            "SELECT kind, AVG((julianday(finished_at) - julianday(created_at)) * 86400), "
            "MAX((julianday(finished_at) - julianday(created_at)) * 86400) FROM media_pipeline_mediajob "
            "WHERE finished_at IS NOT NULL GROUP BY kind"
        ).fetchall()
        approved = conn.execute("SELECT COUNT(*) FROM personas_writingpersona WHERE approved_at IS NOT NULL").fetchone()
    return {"jobs": jobs, "tasks": tasks, "kinds": kinds, "approved": approved[0]}


def run(quick: bool = False, users: int = USERS) -> Report:
    report = Report(f"Wizard load ({users} concurrent users, offline providers)")
    media = make_media()
    stats = Stats()
    with BenchDatabase("sqlite") as db:
        db_path = db.url.removeprefix("sqlite:///")
        env = db.env()
        worker_cmd = [benchlib.PY, str(benchlib.ROOT / "manage.py"), "db_worker", "--queue-name", "*"]
        worker_cmd += ["--no-reload", "--interval", "0.2", "--no-startup-delay"]
        workers = [
            subprocess.Popen(worker_cmd, env=env, cwd=benchlib.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _ in range(DB_WORKERS)
        ]
        try:
            with Gunicorn(env, workers=2) as server:
                started = time.perf_counter()
                with ThreadPoolExecutor(users) as pool:
                    futures = [pool.submit(WizardUser(i, server.url, stats, media, db_path).run) for i in range(users)]
                    failures = []
                    for future in futures:
                        try:
                            future.result()
                        except Exception as exc:  # noqa: BLE001 - counted and reported
                            failures.append(repr(exc))
                wall = time.perf_counter() - started
                time.sleep(1)  # let the workers settle what the last requests queued
                server_log = server.errors()
            final = final_state(db_path)
        finally:
            worker_errors = []
            for proc in workers:
                benchlib.stop(proc)
                worker_errors.append(proc.stderr.read().decode(errors="replace")[-1500:])
    active = sum(n for status, n in final["jobs"].items() if status in ("queued", "running", "waiting_provider"))
    unfinished_tasks = sum(n for status, n in final["tasks"].items() if status not in ("SUCCESSFUL",))
    report.table(
        f"Wizard: {users} users at once, gunicorn 2 workers + {DB_WORKERS} db_worker processes, SQLite",
        ["figure", "value"],
        [
            ["wall time for all users (s)", wall],
            ["users who finished the wizard", f"{len(stats.durations)} / {users}"],
            ["personas approved", final["approved"]],
            ["wizard time per user, median (s)", median(stats.durations) if stats.durations else "-"],
            ["wizard time per user, max (s)", max(stats.durations) if stats.durations else "-"],
            ["HTTP requests", len(stats.latencies)],
            ["request latency p50 (ms)", median(stats.latencies) * 1000],
            ["request latency p95 (ms)", p95(stats.latencies) * 1000],
            ["request latency max (ms)", max(stats.latencies) * 1000],
            ["errors (5xx or unexpected status)", len(stats.errors)],
            ["jobs by status", final["jobs"]],
            ["queue tasks by status", final["tasks"]],
        ],
    )
    report.table(
        "Job time from queued to finished, by kind (s)",
        ["kind", "mean", "max"],
        [[kind, mean, worst] for kind, mean, worst in final["kinds"]],
    )
    report.table(
        "Request latency by step (ms)",
        ["request", "count", "p50", "p95", "max"],
        [
            [step, len(values), median(values) * 1000, p95(values) * 1000, max(values) * 1000]
            for step, values in sorted(stats.by_step.items(), key=lambda item: -p95(item[1]))
        ],
    )
    errors = len(stats.errors) + len(failures)
    report.check("errors", "0", str(errors), errors == 0)
    report.check("lost jobs (not final) and unfinished queue tasks", "0", f"{active} / {unfinished_tasks}", active == 0)
    report.check("users through the whole wizard", str(users), str(len(stats.durations)), len(stats.durations) == users)
    for line in (stats.errors + failures)[:10]:
        report.notes.append(line)
    if errors and "Traceback" in server_log:
        report.notes.append("server log: " + server_log[-1500:])
    for text in worker_errors:
        if "Traceback" in text:
            report.notes.append("worker log: " + text)
    return report


if __name__ == "__main__":
    count = int(sys.argv[sys.argv.index("--users") + 1]) if "--users" in sys.argv else USERS
    benchlib.main(lambda quick: run(quick, users=count))
