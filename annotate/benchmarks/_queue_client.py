"""One closed-loop API client of the queue benchmark (a process of its own; no Django here).

Loop until the deadline: POST claim, then POST submit on the lease it got; no think time. Reports
latencies and every (lease, comparison) it claimed and submitted through a multiprocessing pipe.
"""

from __future__ import annotations

import http.client
import json
import random
import time


def client_main(*, port: int, token: str, slug: str, go, deadline_s: float, seed: int, conn) -> None:
    rng = random.Random(seed)
    web = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json", "Accept": "application/json"}
    claim_ms: list[float] = []
    submit_ms: list[float] = []
    claimed: list[tuple[int, int]] = []
    submitted: list[int] = []
    errors: list[str] = []
    empty = 0

    def post(path: str, body: dict | None) -> tuple[int, bytes]:
        nonlocal web
        payload = json.dumps(body) if body is not None else ""
        for attempt in range(2):
            try:
                web.request("POST", path, body=payload, headers=headers)
                response = web.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException, OSError):
                # A keep-alive connection the server closed: reconnect once.
                web.close()
                web = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    go.wait()
    stop = time.perf_counter() + deadline_s
    try:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            code, body = post(f"/api/v1/projects/{slug}/queue/claim/", None)
            claim_ms.append((time.perf_counter() - t0) * 1000)
            if code == 204:
                empty += 1
                continue
            if code != 200:
                errors.append(f"claim {code}: {body[:200]!r}")
                continue
            item = json.loads(body)
            claimed.append((item["lease"], item["comparison"]))
            verdict = {
                "choice": rng.choice(["left", "right", "tie", "both_bad"]),
                "submission_key": f"bench-{seed}-{item['lease']}",
                "time_spent_ms": rng.randint(500, 30000),
            }
            t0 = time.perf_counter()
            code, body = post(f"/api/v1/projects/{slug}/queue/{item['lease']}/submit/", verdict)
            submit_ms.append((time.perf_counter() - t0) * 1000)
            if code in (200, 201):
                submitted.append(item["lease"])
            else:
                errors.append(f"submit {code}: {body[:200]!r}")
    except Exception as exc:  # reported to the parent, which prints it
        errors.append(f"{type(exc).__name__}: {exc}")
    conn.send(
        {
            "claim_ms": claim_ms,
            "submit_ms": submit_ms,
            "claimed": claimed,
            "submitted": submitted,
            "errors": errors,
            "empty": empty,
        }
    )
    conn.close()
