import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db import connection

from personas.models import Tier


@pytest.fixture(autouse=True)
def private_media_root(settings, tmp_path):
    """Every test writes media to its own folder, so orphan-file checks are exact."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def no_network_voice(settings):
    """gTTS needs the internet; its own tests turn it back on behind `responses`."""
    settings.GTTS_ENABLED = False


def make_user(username: str, tier: str = Tier.FREE) -> User:
    user = User.objects.create_user(username, f"{username}@example.com", "correct horse battery staple")
    if tier != Tier.FREE:
        user.subscription.tier = tier
        user.subscription.save()
    return user


@pytest.fixture
def owner(db):
    return make_user("owner", Tier.PRO)


@pytest.fixture
def other_user(db):
    return make_user("intruder", Tier.PRO)


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def staff_user(db):
    return User.objects.create_superuser("staff", "staff@example.com", "correct horse battery staple")


@pytest.fixture
def run_jobs(db, monkeypatch):
    """Run every queued job step through the real database worker, as production does, until
    no step enqueues another (polls re-enqueue themselves). Two test-only adjustments: the
    worker's connection recycling is off (it would close the test's transaction, as Django's
    test client also avoids), and on-commit enqueues made by a step fire when the batch ends."""
    from django.core.management import call_command
    from django.test import TestCase
    from django_tasks_db.management.commands import db_worker

    monkeypatch.setattr(db_worker, "close_old_connections", lambda: None)

    def run(max_rounds: int = 50):
        for _ in range(max_rounds):
            with TestCase.captureOnCommitCallbacks(execute=True) as enqueued:
                call_command("db_worker", "--batch", "--no-startup-delay", "--queue-name", "*", verbosity=0)
            if not enqueued:
                return

    return run


def subprocess_database_url() -> str:
    """The test database as a DATABASE_URL, for worker processes started by tests."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    host, port, user = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432, db.get("USER") or "postgres"
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


def start_db_worker(media_root, *, interval: float = 0.2, **popen) -> subprocess.Popen:
    """A real `manage.py db_worker` process on the test database and media folder (no
    autoreloader, so the process started is the one that works, and the one a test can kill)."""
    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "MEDIA_ROOT": str(media_root),
        "GTTS_ENABLED": "false",
    }
    command = ["manage.py", "db_worker", "--queue-name", "*", "--interval", str(interval), "--no-startup-delay"]
    return subprocess.Popen([sys.executable, *command, "--no-reload"], cwd=django_settings.BASE_DIR, env=env, **popen)
