"""Labeling queue under load, through the HTTP API, served as in production.

Creates a project with N comparisons (default 100k) in the database DATABASE_URL names, starts
gunicorn on 127.0.0.1 (not the development server), then for each client count C (default 1, 8,
32, 64) runs C closed-loop clients, each a separate process with its own person and API token,
that claim and submit with no think time for a bounded time. Afterwards the database is checked:
double assignments, overlap violations and lost submissions must all be 0.

Run it on PostgreSQL, e.g.
DATABASE_URL=postgres://concord@127.0.0.1:54329/concord_queuebench python manage.py benchmark queue
"""

from __future__ import annotations

import json
import multiprocessing
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from rest_framework.authtoken.models import Token

from annotate import selectors
from annotate.benchmarks._queue_client import client_main
from annotate.models import (
    Assignment,
    Candidate,
    CandidateSet,
    Comparison,
    Judgment,
    Membership,
    Project,
    Prompt,
    Role,
    RunStatus,
)
from annotate.services.queue import Priority

CANDIDATES_PER_PROMPT = 4  # 6 pairs per prompt


def add_arguments(parser) -> None:
    parser.add_argument("--comparisons", type=int, default=100_000)
    parser.add_argument("--clients", default="1,8,32,64", help="comma-separated client counts")
    parser.add_argument("--seconds", type=float, default=12.0, help="duration of each client level")
    parser.add_argument("--overlap", type=int, default=2)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker (gthread)")
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
    parser.add_argument("--keep", action="store_true", help="keep the benchmark project afterwards")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _populate(*, n: int, overlap: int) -> tuple[Project, float]:
    """A project with about `n` pair comparisons (6 per prompt), a few at higher priority."""
    t0 = time.perf_counter()
    slug = f"queuebench-{uuid.uuid4().hex[:8]}"
    prompts_needed = -(-n // 6)
    with transaction.atomic():
        project = Project.objects.create(name="queue benchmark", slug=slug, overlap=overlap, lease_minutes=15)
        prompts = Prompt.objects.bulk_create(
            [
                Prompt(project=project, external_id=f"q{i}", messages=[{"role": "user", "content": f"Question {i}?"}])
                for i in range(prompts_needed)
            ],
            batch_size=5000,
        )
        sets = CandidateSet.objects.bulk_create(
            [CandidateSet(prompt=p, n=CANDIDATES_PER_PROMPT, status=RunStatus.DONE) for p in prompts],
            batch_size=5000,
        )
        candidates = Candidate.objects.bulk_create(
            [
                Candidate(candidate_set=s, prompt_id=s.prompt_id, position=k, text=f"Answer {k} to {s.prompt_id}.")
                for s in sets
                for k in range(CANDIDATES_PER_PROMPT)
            ],
            batch_size=5000,
        )
        comparisons = []
        for i in range(prompts_needed):
            group = candidates[i * CANDIDATES_PER_PROMPT : (i + 1) * CANDIDATES_PER_PROMPT]
            for x in range(CANDIDATES_PER_PROMPT):
                for y in range(x + 1, CANDIDATES_PER_PROMPT):
                    if len(comparisons) == n:
                        break
                    k = len(comparisons)
                    priority = (
                        Priority.ADJUDICATION
                        if k % 97 == 0
                        else Priority.DISAGREEMENT
                        if k % 13 == 0
                        else Priority.JUDGE_UNCERTAIN + k % 100
                        if k % 5 == 0
                        else Priority.DEFAULT
                    )
                    comparisons.append(
                        Comparison(
                            project=project,
                            prompt_id=group[x].prompt_id,
                            candidate_a=group[x],
                            candidate_b=group[y],
                            priority=priority,
                        )
                    )
        Comparison.objects.bulk_create(comparisons, batch_size=5000)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE annotate_comparison")
            cursor.execute("ANALYZE annotate_assignment")
            cursor.execute("ANALYZE annotate_judgment")
    return project, time.perf_counter() - t0


def _people(*, project: Project, count: int) -> list[str]:
    User = get_user_model()
    tokens = []
    for i in range(count):
        user, _ = User.objects.get_or_create(username=f"queuebench-{project.slug}-{i}")
        Membership.objects.get_or_create(project=project, user=user, role=Role.ANNOTATOR)
        tokens.append(Token.objects.get_or_create(user=user)[0].key)
    return tokens


def _start_server(*, port: int, workers: int, threads: int, worker_class: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "annotate.settings",
            "DJANGO_DEBUG": "0",  # production settings
            "DJANGO_SECRET_KEY": env.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(40),
            "DATABASE_URL": env.get("DATABASE_URL", ""),
            "LOG_LEVEL": "WARNING",
            "PYTHONWARNINGS": "ignore:No directory at",  # WhiteNoise: no collectstatic for an API benchmark
        }
    )
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "annotate.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        worker_class,
        "--threads",
        str(threads if worker_class == "gthread" else 1),
        "--keep-alive",
        "30",
        "--backlog",
        "512",
        "--log-level",
        "warning",
    ]
    return subprocess.Popen(command, cwd=settings.BASE_DIR, env=env)  # noqa: S603 - fixed argv, our interpreter


def _wait_ready(*, port: int, token: str, server: subprocess.Popen, timeout: float = 60) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/projects/", headers={"Authorization": f"Token {token}"}
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - our own server on 127.0.0.1
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer in time")


def _server_cpu_s(server: subprocess.Popen) -> float | None:
    """CPU seconds used so far by the gunicorn master and its workers (Linux /proc; else None).

    With a shared, busy machine, wall-clock rates depend on the neighbours; CPU per item does not.
    """
    try:
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, ppid = int(entry), int(fields[1])
            if pid == server.pid or ppid == server.pid:
                total += int(fields[11]) + int(fields[12])  # utime + stime
        return total / tick
    except (OSError, ValueError, IndexError):
        return None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _level(
    *, clients: int, port: int, tokens: list[str], slug: str, seconds: float, server: subprocess.Popen
) -> tuple[dict, list[dict]]:
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    pipes, procs = [], []
    for i in range(clients):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=client_main,
            kwargs={
                "port": port,
                "token": tokens[i],
                "slug": slug,
                "go": go,
                "deadline_s": seconds,
                "seed": clients * 1000 + i,
                "conn": child,
            },
        )
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    time.sleep(1.0 + clients * 0.05)  # let every client process start (spawn imports) before the clock
    cpu_before = _server_cpu_s(server)
    started = time.perf_counter()
    go.set()
    reports = [pipe.recv() for pipe in pipes]
    elapsed = time.perf_counter() - started
    cpu_after = _server_cpu_s(server)
    for proc in procs:
        proc.join(timeout=30)
    claim = [ms for r in reports for ms in r["claim_ms"]]
    submit = [ms for r in reports for ms in r["submit_ms"]]
    done = sum(len(r["submitted"]) for r in reports)
    return (
        {
            "claim_p50_ms": _percentile(claim, 0.50),
            "claim_p95_ms": _percentile(claim, 0.95),
            "claim_p99_ms": _percentile(claim, 0.99),
            "submit_p50_ms": _percentile(submit, 0.50),
            "submit_p99_ms": _percentile(submit, 0.99),
            "items_per_s": round(done / elapsed, 1),
            "server_cpu_ms_per_item": (
                round((cpu_after - cpu_before) * 1000 / done, 2)
                if done and cpu_before is not None and cpu_after is not None
                else None
            ),
            "items": done,
            "claims": len(claim),
            "seconds": round(elapsed, 2),
            "claim_mean_ms": round(statistics.fmean(claim), 2) if claim else None,
            "errors": sum(len(r["errors"]) for r in reports),
            "error_samples": [e for r in reports for e in r["errors"]][:3],
        },
        reports,
    )


def _cleanup(project: Project) -> None:
    """Delete the benchmark's rows with plain SQL (the ORM's cascade would walk 100k rows in Python)."""
    tables = [
        (Judgment, "comparison_id IN (SELECT id FROM annotate_comparison WHERE project_id = %s)"),
        (Assignment, "comparison_id IN (SELECT id FROM annotate_comparison WHERE project_id = %s)"),
        (Comparison, "project_id = %s"),
        (Candidate, "prompt_id IN (SELECT id FROM annotate_prompt WHERE project_id = %s)"),
        (CandidateSet, "prompt_id IN (SELECT id FROM annotate_prompt WHERE project_id = %s)"),
        (Prompt, "project_id = %s"),
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        for model, where in tables:
            cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE {where}", [project.pk])  # noqa: S608
    users = get_user_model().objects.filter(username__startswith=f"queuebench-{project.slug}-")
    Token.objects.filter(user__in=users).delete()
    project.delete()
    users.delete()


def run(options: dict) -> dict:
    levels = [int(c) for c in str(options["clients"]).split(",") if c.strip()]
    if connection.vendor != "postgresql":
        print("note: not PostgreSQL; SQLite serialises every write", file=sys.stderr)
    call_command("migrate", verbosity=0)
    project, populate_s = _populate(n=options["comparisons"], overlap=options["overlap"])
    print(f"populated {options['comparisons']} comparisons in {populate_s:.1f}s", file=sys.stderr)
    tokens = _people(project=project, count=max(levels))
    port = _free_port()
    connection.close()  # the server and clients use their own connections
    server = _start_server(
        port=port, workers=options["workers"], threads=options["threads"], worker_class=options["worker_class"]
    )
    results: dict[str, dict] = {}
    all_reports: list[dict] = []
    try:
        _wait_ready(port=port, token=tokens[0], server=server)
        for clients in levels:
            figures, reports = _level(
                clients=clients, port=port, tokens=tokens, slug=project.slug, seconds=options["seconds"], server=server
            )
            results[str(clients)] = figures
            all_reports += reports
            print(f"{clients} clients: {json.dumps(figures)}", file=sys.stderr)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

    # Checked from the database, and against what the clients saw.
    violations = selectors.queue_violations(project=project)
    handed = Counter()  # comparison -> leases the clients were handed (distinct lease ids)
    seen: dict[tuple[int, int], set[int]] = {}
    lease_user = dict(
        Assignment.objects.filter(comparison__project=project).values_list("pk", "user_id").iterator(chunk_size=5000)
    )
    for report in all_reports:
        for lease_id, comparison_id in report["claimed"]:
            seen.setdefault((lease_user[lease_id], comparison_id), set()).add(lease_id)
    double_seen = sum(1 for leases in seen.values() if len(leases) > 1)
    for (_, comparison_id), _leases in seen.items():
        handed[comparison_id] += 1
    overlap_seen = sum(1 for count in handed.values() if count > options["overlap"])
    submitted = [lease_id for r in all_reports for lease_id in r["submitted"]]
    stored = set(
        Judgment.objects.filter(assignment_id__in=submitted, derived_from__isnull=True).values_list(
            "assignment_id", flat=True
        )
    )
    lost = sum(1 for lease_id in set(submitted) if lease_id not in stored)
    total_comparisons = Comparison.objects.filter(project=project).count()
    if not options["keep"]:
        _cleanup(project)
    return {
        "benchmark": "queue",
        "database": connection.vendor,
        "comparisons": total_comparisons,
        "overlap": options["overlap"],
        "server": f"gunicorn {options['worker_class']} {options['workers']}x"
        f"{options['threads'] if options['worker_class'] == 'gthread' else 1} on 127.0.0.1",
        "cpus": os.cpu_count(),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "seconds_per_level": options["seconds"],
        "populate_s": round(populate_s, 1),
        "clients": results,
        "double_assignments": violations["double_assignments"] + double_seen,
        "overlap_violations": violations["overlap_violations"] + overlap_seen,
        "lost_submissions": violations["lost_submissions"] + lost,
        "counter_drift": violations["counter_drift"],
        "submissions_checked": len(set(submitted)),
    }
