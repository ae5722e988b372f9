"""A real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions protocol, for tests.

It plays a small but consistent judge: a response that mentions the `good_word` wins. With
`logprobs` requested it answers one token with top log-probabilities; otherwise it writes a
listwise ranking (candidates mentioning the good word first, then longer before shorter).
It can fail on purpose (`fail_next` transient 503s) and checks the bearer key when one is set.
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class FakeOpenAI:
    good_word: str = "Paris"
    api_key: str | None = None
    fail_next: int = 0
    ranking_prefix: str = "Here is my ranking:\n"
    requests: list[dict] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def verdict_tokens(self, user: str) -> list[dict]:
        match = re.search(r"\[Response A\]\n(.*?)\n\n\[Response B\]\n(.*?)\n\n", user, re.S)
        first, second = match.groups() if match else ("", "")
        good_first, good_second = self.good_word in first, self.good_word in second
        if good_first == good_second:
            probs = {"NA": 0.6, "A": 0.2, " B": 0.15, "The": 0.05}
        elif good_first:
            probs = {"A": 0.7, " A": 0.05, "B": 0.15, "NA": 0.05, "The": 0.05}
        else:
            probs = {"B": 0.75, "A": 0.15, "NA": 0.05, "I": 0.05}
        return [{"token": t, "logprob": math.log(p), "bytes": None} for t, p in probs.items()]

    def ranking(self, user: str) -> str:
        blocks = re.findall(r"^\[(\d+)\]\n(.*?)(?=\n\n\[\d+\]\n|\Z)", user, re.S | re.M)
        order = sorted(blocks, key=lambda b: (self.good_word not in b[1], -len(b[1]), int(b[0])))
        return self.ranking_prefix + " > ".join(f"[{n}]" for n, _ in order)


def _handler(fake: FakeOpenAI):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with fake.lock:
                fake.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                failing = fake.fail_next > 0
                if failing:
                    fake.fail_next -= 1
            if self.path != "/v1/chat/completions":
                return self._send(404, {"error": {"message": "not found"}})
            if fake.api_key and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                return self._send(401, {"error": {"message": "bad key"}})
            if failing:
                return self._send(503, {"error": {"message": "overloaded, try again"}})
            if body.get("model") == "refuses":
                return self._send(400, {"error": {"message": "model refuses"}})
            user = body["messages"][-1]["content"]
            if body.get("logprobs"):
                top = fake.verdict_tokens(user)[: body.get("top_logprobs", 20)]
                best = max(top, key=lambda t: t["logprob"])
                choice = {
                    "index": 0,
                    "message": {"role": "assistant", "content": best["token"]},
                    "logprobs": {"content": [{**best, "top_logprobs": top}]},
                    "finish_reason": "length",
                }
            else:
                choice = {
                    "index": 0,
                    "message": {"role": "assistant", "content": fake.ranking(user)},
                    "finish_reason": "stop",
                }
            return self._send(200, {"id": "cmpl-test", "object": "chat.completion", "choices": [choice]})

    return Handler


class running_server:
    """Context manager: start FakeOpenAI on a free port in a thread; `fake.url` is its …/v1 base."""

    def __init__(self, fake: FakeOpenAI | None = None) -> None:
        self.fake = fake or FakeOpenAI()

    def __enter__(self) -> FakeOpenAI:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.fake))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.fake.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        return self.fake

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
