"""Shared helpers for the benchmarks: timing, tables, memory, bench databases and servers.

Every figure is a median over several runs; comparisons are ratios measured in the same run."""

import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = str(ROOT / ".venv" / "bin" / "python")
for folder in (str(ROOT), str(BENCH)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
# Production needs a shared cache for the rate limits; the benchmarks use their own Redis database.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
PG_DB_PREFIX = "alwrity_bench"
# A fixed Fernet key: bench media is encrypted at rest, exactly as in production.
BENCH_FERNET_KEY = "YmVuY2gtb25seS1tZWRpYS1rZXktMzItYnl0ZXMhISE="


# --- Results -------------------------------------------------------------------------------


@dataclass
class Check:
    what: str
    target: str
    measured: str
    passed: bool | None  # None: informational

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "info"}[self.passed]


@dataclass
class Report:
    name: str
    checks: list[Check] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def check(self, what: str, target: str, measured: str, passed: bool | None) -> None:
        self.checks.append(Check(what, target, measured, passed))

    def table(self, title: str, headers: list[str], rows: list[list]) -> None:
        self.tables.append((title, headers, rows))

    def print(self, markdown: bool = False) -> None:
        out = print_markdown if markdown else print_table
        for title, headers, rows in self.tables:
            out(title, headers, rows)
        out(
            f"{self.name}: targets",
            ["what", "target", "measured", "verdict"],
            [[c.what, c.target, c.measured, c.verdict] for c in self.checks],
        )
        for note in self.notes:
            print(f"  note: {note}")
        print(f"  ({self.name} took {self.seconds:.0f} s)\n")

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "seconds": self.seconds,
            "checks": [asdict(c) | {"verdict": c.verdict} for c in self.checks],
            "tables": [{"title": t, "headers": h, "rows": r} for t, h, r in self.tables],
            "notes": self.notes,
        }


def fmt(value) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 0.1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


def print_table(title: str, headers: list[str], rows: list[list]) -> None:
    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  " + "  ".join("-" * w for w in widths))
    for row in cells:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def print_markdown(title: str, headers: list[str], rows: list[list]) -> None:
    print(f"\n**{title}**\n")
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(fmt(v) for v in row) + " |")


def main(run: Callable[..., Report]) -> Report:
    """Entry point of a standalone bench script: `--quick` for fewer runs, `--markdown`, `--json`."""
    args = sys.argv[1:]
    started = time.perf_counter()
    report = run(quick="--quick" in args)
    report.seconds = time.perf_counter() - started
    report.print(markdown="--markdown" in args)
    if "--json" in args:
        print(json.dumps(report.as_dict(), indent=1, default=str))
    return report


# --- Timing and memory -----------------------------------------------------------------------


def median(values) -> float:
    return float(statistics.median(values))


def p95(values) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))])


def timed(fn: Callable, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def _status_kb(key: str, pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss_mb(pid: int | str = "self") -> float:
    return _status_kb("VmRSS", pid) / 1024


def peak_rss_mb(pid: int | str = "self") -> float:
    return _status_kb("VmHWM", pid) / 1024


def reset_peak_rss(pid: int | str = "self") -> None:
    """Linux resets VmHWM to the current RSS when "5" is written to clear_refs."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def in_child(fn: Callable, *args, **kwargs):
    """Run fn in a fresh interpreter (spawned, not forked: nothing inherited) and return its result."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args, **kwargs).result()


# --- The machine -----------------------------------------------------------------------------


def machine() -> dict:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = _meminfo_kb("MemTotal") / 1024 / 1024
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_gib, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def _meminfo_kb(key: str) -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


# --- Django in this process ------------------------------------------------------------------


def bench_env(*, database_url: str, media_root: str, extra: dict | None = None) -> dict:
    """Environment for the app in production mode (DEBUG off, encrypted media, offline providers)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_URL", "TASKS_URL", "AWS_", "WAVESPEED", "MINIMAX"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench_settings",
            "PYTHONPATH": os.pathsep.join([str(BENCH), str(ROOT)]),
            "DEBUG": "false",
            "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789",
            "MEDIA_ENCRYPTION_KEYS": BENCH_FERNET_KEY,
            "SECURE_SSL_REDIRECT": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "MEDIA_ROOT": media_root,
            "BENCH_STATIC_ROOT": str(Path(media_root).parent / "static"),
            "GTTS_ENABLED": "false",
            "VOICE_PROVIDER": "offline",
            "AVATAR_PROVIDER": "offline",
            "LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra or {})
    _forget_rate_limits()
    return env


def _forget_rate_limits() -> None:
    """Each run starts with fresh databases whose user ids repeat: start the counters afresh too."""
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def setup_django(env: dict) -> None:
    os.environ.update(env)
    import django

    django.setup()


# --- Bench databases -------------------------------------------------------------------------


class BenchDatabase:
    """A fresh database (SQLite file in a temp dir, or PostgreSQL `alwrity_bench*`), migrated,
    with its own MEDIA_ROOT. Use as a context manager; everything is removed afterwards."""

    def __init__(self, kind: str, suffix: str = ""):
        self.kind = kind
        self.dir = tempfile.mkdtemp(prefix=f"alwrity-bench-{kind}-")
        self.media_root = os.path.join(self.dir, "media")
        os.makedirs(self.media_root)
        if kind == "sqlite":
            self.url = f"sqlite:///{self.dir}/bench.sqlite3"
            self.pg_name = ""
        else:
            self.pg_name = PG_DB_PREFIX + (f"_{suffix}" if suffix else "")
            self.url = f"{PG_URL}/{self.pg_name}"

    def env(self, extra: dict | None = None) -> dict:
        return bench_env(database_url=self.url, media_root=self.media_root, extra=extra)

    def __enter__(self):
        if self.pg_name:
            _psql(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
            _psql(f'CREATE DATABASE "{self.pg_name}"')
        manage("migrate", "--noinput", env=self.env())
        manage("collectstatic", "--noinput", env=self.env())
        return self

    def __exit__(self, *exc):
        if self.pg_name:
            _psql(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
        shutil.rmtree(self.dir, ignore_errors=True)


def _psql(sql: str) -> None:
    host = PG_URL.split("@")[-1].split(":")[0]
    port = PG_URL.rsplit(":", 1)[-1]
    subprocess.run(
        ["psql", "-h", host, "-p", port, "-U", "postgres", "-d", "postgres", "-q", "-c", sql],
        check=True,
        capture_output=True,
    )


def manage(*args: str, env: dict) -> str:
    done = subprocess.run([PY, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


# --- Servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


class Gunicorn:
    """gunicorn (sync workers) serving bench/bare_wsgi.py: the app plus one bare view."""

    def __init__(self, env: dict, workers: int = 2, timeout: int = 120):
        self.env = env
        self.workers = workers
        self.timeout = timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="gunicorn-", suffix=".log", delete=False)  # noqa: SIM115

    def __enter__(self):
        cmd = [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "bare_wsgi:application",
            "--chdir",
            str(ROOT),
            "--pythonpath",
            str(BENCH),
            "-w",
            str(self.workers),
            "-b",
            f"127.0.0.1:{self.port}",
            "--timeout",
            str(self.timeout),
            "--log-level",
            "warning",
        ]
        self.proc = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)
        # Workers boot after the master binds; wait until all of them answer.
        deadline = time.monotonic() + 30
        while len(self.worker_pids()) < self.workers and time.monotonic() < deadline:
            time.sleep(0.1)
        return self

    def worker_pids(self) -> list[int]:
        return child_pids(self.proc.pid)

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def errors(self) -> str:
        with open(self.log.name) as f:
            return f.read()


def child_pids(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def media_tmpdir() -> str:
    return tempfile.mkdtemp(prefix="alwrity-bench-media-")
