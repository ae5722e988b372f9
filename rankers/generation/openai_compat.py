"""A provider for any OpenAI-compatible chat-completions server (vLLM, SGLang, TGI, Ollama, hosted APIs).

Options (from the spec's params, all optional): timeout_s (read timeout, default 120), connect_timeout_s
(10), max_retries (4), backoff_s (1.0, doubled per retry, with jitter), backoff_max_s (30), concurrency
(8 requests in flight). The API key is read from the environment variable the spec names
(`api_key_env`) when the provider is used; it is never stored.

Only transient failures are retried: connection errors and timeouts, 429 and 5xx responses (honouring
Retry-After). Any other 4xx means the request itself is wrong and fails at once.
"""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from rankers.types import Generation, GenerationRequest, ModelRef, SamplingParams


class ProviderError(Exception):
    """A request to a generation server failed for good (after retries, if it was transient)."""

    def __init__(self, message: str, *, status: int | None = None, transient: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient


def _transient_status(status: int) -> bool:
    return status == 429 or status >= 500


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class OpenAICompatibleProvider:
    def __init__(self, ref: ModelRef, *, client: httpx.Client | None = None) -> None:
        if not ref.endpoint:
            raise ValueError("an OpenAI-compatible generator needs an endpoint (the server's base URL, …/v1)")
        self.ref = ref
        self.timeout_s = float(ref.option("timeout_s", 120))
        self.connect_timeout_s = float(ref.option("connect_timeout_s", 10))
        self.max_retries = int(ref.option("max_retries", 4))
        self.backoff_s = float(ref.option("backoff_s", 1.0))
        self.backoff_max_s = float(ref.option("backoff_max_s", 30))
        self.concurrency = max(1, int(ref.option("concurrency", 8)))
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    base_url=self.ref.endpoint.rstrip("/") + "/",
                    timeout=httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s),
                    limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.ref.api_key_env:
            key = os.environ.get(self.ref.api_key_env)
            if not key:
                raise ProviderError(f"the environment variable {self.ref.api_key_env} (the API key) is not set")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def payload(self, request: GenerationRequest, params: SamplingParams, index: int = 0) -> dict:
        body: dict = {
            "model": self.ref.model,
            "messages": request.conversation(),
            "max_tokens": params.max_new_tokens,
            "temperature": max(0.0, params.temperature),
            "n": 1,
        }
        if not params.greedy:
            body["top_p"] = params.top_p
        if params.seed is not None:
            # One seed per request: the same seed for the N candidates of a prompt would make a
            # seeded server return N identical answers.
            body["seed"] = params.seed + index
        if params.min_new_tokens:
            body["min_tokens"] = params.min_new_tokens  # a vLLM / SGLang extension; sent only when asked for
        return body

    def _backoff(self, attempt: int, response: httpx.Response | None) -> float:
        hinted = _retry_after(response) if response is not None else None
        if hinted is not None:
            return min(hinted, self.backoff_max_s)
        delay = min(self.backoff_max_s, self.backoff_s * (2**attempt))
        return delay * (0.5 + random.random() / 2)

    def complete(self, body: dict) -> Generation:
        """POST one chat completion, retrying transient failures with exponential backoff."""
        headers = self._headers()
        last: ProviderError | None = None
        for attempt in range(self.max_retries + 1):
            response = None
            try:
                response = self.client.post("chat/completions", json=body, headers=headers)
            except httpx.TransportError as exc:  # connect errors, timeouts, dropped connections
                last = ProviderError(f"{type(exc).__name__}: {exc}", transient=True)
            else:
                if response.status_code < 400:
                    return _parse(response)
                message = f"HTTP {response.status_code} from {self.ref.endpoint}: {response.text[:500]}"
                if not _transient_status(response.status_code):
                    raise ProviderError(message, status=response.status_code)
                last = ProviderError(message, status=response.status_code, transient=True)
            if attempt < self.max_retries:
                time.sleep(self._backoff(attempt, response))
        assert last is not None
        raise ProviderError(
            f"gave up after {self.max_retries + 1} attempts: {last}", status=last.status, transient=True
        )

    def generate(
        self, requests: list[GenerationRequest], *, params: SamplingParams, batch_size: int = 32
    ) -> list[Generation]:
        """One completion per request, at most `concurrency` in flight; results in request order.

        `batch_size` is ignored: the server batches concurrent requests itself.
        """
        if not requests:
            return []
        bodies = [self.payload(r, params, i) for i, r in enumerate(requests)]
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(bodies)), thread_name_prefix="openai")
        try:
            futures = [pool.submit(self.complete, body) for body in bodies]
            return [f.result() for f in futures]
        finally:
            # On failure (or a time limit raised in this thread) do not wait for the rest.
            pool.shutdown(wait=False, cancel_futures=True)


def _parse(response: httpx.Response) -> Generation:
    try:
        data = response.json()
        choice = data["choices"][0]
        text = choice["message"]["content"] or ""
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ProviderError(f"not a chat-completions response: {response.text[:300]}") from exc
    usage = data.get("usage") or {}
    n_tokens = usage.get("completion_tokens")
    finish = choice.get("finish_reason") or "stop"
    return Generation(
        text=text.strip(),
        n_tokens=int(n_tokens) if isinstance(n_tokens, int) else len(text.split()),
        finish_reason="length" if finish == "length" else "stop",
        meta={"model": data.get("model", "")},
    )
