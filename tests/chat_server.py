"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions wire format.

Tests start it in a thread and point an "openai" generator at it: the provider's HTTP client,
retries and timeouts run for real. It records every request, can serve scripted failures first
(`script`), can hold requests until a test releases them (`gate`), and answers the rest with
`responder(body) -> str`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def echo_responder(body: dict) -> str:
    last = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    return f"[{body['model']}] {system[:40]} :: {last[:80]} #{body.get('seed', '')}"


class ChatServer:
    def __init__(self, responder: Callable[[dict], str] = echo_responder) -> None:
        self.responder = responder
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.script: deque[tuple[int, object, dict[str, str]]] = deque()
        self.gate: threading.Event | None = None
        self.received = threading.Event()
        self.delay_s = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def fail_next(self, status: int, body: object = None, headers: dict[str, str] | None = None) -> None:
        self.script.append((status, body if body is not None else {"error": {"message": "scripted"}}, headers or {}))

    def start(self) -> ChatServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                with server._lock:
                    server.requests.append(body)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    scripted = server.script.popleft() if server.script else None
                server.received.set()
                try:
                    if server.gate is not None:
                        server.gate.wait(timeout=120)
                    if server.delay_s:
                        time.sleep(server.delay_s)
                    if scripted is not None:
                        status, payload, headers = scripted
                        self._send(status, payload, headers)
                        return
                    text = server.responder(body)
                    self._send(
                        200,
                        {
                            "id": f"chatcmpl-{len(server.requests)}",
                            "object": "chat.completion",
                            "created": int(time.time()),
                            "model": body.get("model", ""),
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop",
                                }
                            ],
                            "usage": {
                                "prompt_tokens": 10,
                                "completion_tokens": len(text.split()),
                                "total_tokens": 10 + len(text.split()),
                            },
                        },
                    )
                finally:
                    with server._lock:
                        server.in_flight -= 1

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                # A client that went away (a killed worker) is part of what the tests do.
                exc = sys.exc_info()[1]
                if not isinstance(exc, (BrokenPipeError, ConnectionResetError)):
                    super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="chat-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
