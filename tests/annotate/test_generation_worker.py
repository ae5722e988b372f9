"""Generation under a REAL Celery worker process (Redis broker, the test database).

The generator is an OpenAI-compatible server run by the test on 127.0.0.1 that holds requests until the
test releases them, so "the worker is in the middle of the task" is a fact the test observes (the
request arrived), not a guess about timing. Waits below are upper bounds on how long a step may take.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.db import connection

from annotate.celery import app
from annotate.models import Candidate, CandidateSet, Comparison, GeneratorSpec, ModelKind, RunStatus
from annotate.services import generation
from annotate.tasks import gpu_generate_candidates
from tests.chat_server import ChatServer
from tests.factories import PromptFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

BROKER = os.environ.get("CONCORD_TEST_WORKER_BROKER", "redis://127.0.0.1:63799/3")
VISIBILITY_S = 3
ROOT = Path(__file__).resolve().parents[2]


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 6379), timeout=2):
            return True
    except OSError:
        return False


def _database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _drop_pooled_connections() -> None:
    """Connections pooled by earlier tests point at the default broker URL: forget them."""
    app._pool = None  # not closed: kombu's global producer pools may still hand it to others
    app.amqp._producer_pool = None


@pytest.fixture
def broker(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("a worker process needs a database server it can share with the test (PostgreSQL)")
    if not _reachable(BROKER):
        pytest.skip(f"no Redis at {BROKER} (start it with .ci/services.sh)")
    import redis

    client = redis.Redis.from_url(BROKER)
    client.flushdb()  # this test's own database number: stale messages from an earlier run would interfere
    saved = {k: app.conf[k] for k in ("broker_url", "task_always_eager", "broker_transport_options")}
    _drop_pooled_connections()
    # Celery prefers the CELERY_BROKER_URL environment variable over its configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", BROKER)
    app.conf.broker_url = BROKER
    app.conf.task_always_eager = False
    app.conf.broker_transport_options = {"visibility_timeout": VISIBILITY_S}
    yield client
    _drop_pooled_connections()
    for key, value in saved.items():
        app.conf[key] = value
    client.flushdb()


@pytest.fixture
def server():
    srv = ChatServer()
    srv.gate = threading.Event()  # requests wait until the test sets it
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def workers(tmp_path):
    started: list[subprocess.Popen] = []

    def start(**extra_env: str) -> subprocess.Popen:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "annotate.settings_test",
            "DATABASE_URL": _database_url(),
            "CELERY_BROKER_URL": BROKER,
            "CONCORD_BROKER_VISIBILITY_TIMEOUT_S": str(VISIBILITY_S),
            "CONCORD_TORCH_THREADS": "1",
            "PYTHONPATH": str(ROOT),
            **extra_env,
        }
        log = open(tmp_path / f"worker-{len(started)}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "annotate", "worker", "-Q", "gpu,default", "--pool", "prefork",
             "--concurrency", "1", "--prefetch-multiplier", "1", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "-n", f"test-{uuid.uuid4().hex[:8]}@%h", "-l", "info"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        proc.log_path = log.name  # type: ignore[attr-defined]
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_for(predicate, *, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
    log = Path(proc.log_path).read_text()[-3000:] if proc is not None else ""  # type: ignore[attr-defined]
    pytest.fail(f"timed out waiting for {what}\n--- worker log ---\n{log}")


def status_of(pk: int) -> str:
    return CandidateSet.objects.get(pk=pk).status


@pytest.fixture
def served_spec(server):
    return GeneratorSpec.objects.create(
        name="served",
        kind=ModelKind.OPENAI,
        model="served-model",
        endpoint=server.url,
        params={"temperature": 0.7, "max_new_tokens": 16, "backoff_s": 0.01, "timeout_s": 300},
    )


def test_worker_killed_mid_task_leaves_the_set_retryable_and_the_retry_completes_it_once(
    broker, server, workers, project, served_spec
):
    (cset,) = generation.candidate_sets_create(
        project=project, prompts=[PromptFactory(project=project)], generator=served_spec, n=2
    )
    first = workers()
    wait_for(server.received.is_set, timeout=120, what="the worker to start generating", proc=first)
    assert status_of(cset.pk) == RunStatus.RUNNING  # in the middle of the task: claimed, nothing written

    os.killpg(first.pid, signal.SIGKILL)  # the whole worker: parent and child, no cleanup
    first.wait()
    killed_at = time.monotonic()
    gate, server.gate = server.gate, None
    gate.set()  # the dead worker's requests are answered into closed sockets
    cset.refresh_from_db()
    assert cset.status == RunStatus.RUNNING and cset.attempts == 1
    assert not Candidate.objects.filter(candidate_set=cset).exists()

    # The message was never acknowledged (acks_late): once the visibility timeout has passed, a new
    # worker restores it from Redis and takes the abandoned set over.
    time.sleep(max(0.0, VISIBILITY_S + 0.5 - (time.monotonic() - killed_at)))
    second = workers()
    wait_for(lambda: status_of(cset.pk) == RunStatus.DONE, timeout=180, what="the redelivered task", proc=second)
    wait_for(lambda: broker.hlen("unacked") == 0, timeout=30, what="the message to be acknowledged", proc=second)

    cset.refresh_from_db()
    assert cset.attempts == 2 and cset.error == ""
    assert Candidate.objects.filter(candidate_set=cset).count() == 2  # once: not 4
    assert Comparison.objects.filter(prompt=cset.prompt).count() == 1
    assert cset.diversity["n"] == 2
    assert broker.llen("gpu") == 0  # nothing left to run again


def test_soft_time_limit_in_a_real_worker_is_recorded_and_the_retry_completes(
    broker, server, workers, project, served_spec, monkeypatch
):
    with monkeypatch.context() as patch:
        patch.setattr(generation, "_enqueue", lambda set_ids: None)
        (cset,) = generation.candidate_sets_create(
            project=project, prompts=[PromptFactory(project=project)], generator=served_spec, n=2
        )
    # Time limits travel in the message, from the sender's task options: send this one with a short limit.
    gpu_generate_candidates.apply_async(args=[[cset.pk]], soft_time_limit=3, time_limit=60)
    worker = workers(CONCORD_GENERATION_SOFT_LIMIT_S="3", CONCORD_GENERATION_HARD_LIMIT_S="60")
    wait_for(server.received.is_set, timeout=120, what="the worker to start generating", proc=worker)
    # The server holds the requests; the soft limit interrupts the task, which records the failure.
    wait_for(lambda: status_of(cset.pk) == RunStatus.FAILED, timeout=60, what="the soft time limit", proc=worker)
    cset.refresh_from_db()
    assert "soft time limit (3 s)" in cset.error
    server.gate.set()
    server.gate = None

    assert generation.candidate_sets_retry(project=project, set_ids=[cset.pk]) == 1
    wait_for(lambda: status_of(cset.pk) == RunStatus.DONE, timeout=120, what="the retried set", proc=worker)
    assert Candidate.objects.filter(candidate_set=cset).count() == 2
