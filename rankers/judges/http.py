"""A small client for OpenAI-compatible chat-completion servers (vLLM, SGLang, TGI, Ollama, hosted).

Only transient failures are retried (connection errors, timeouts, 408/409/425/429/5xx), with
exponential back-off that honours Retry-After; anything else fails at once with the server's message.
The API key is read from the environment variable the judge names, never stored.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Any

import httpx

from rankers.judges.types import JudgeError

TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 30.0


class ChatClient:
    def __init__(
        self,
        endpoint: str,
        model: str,
        *,
        api_key_env: str = "",
        timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not endpoint:
            raise JudgeError("an OpenAI-compatible judge needs an endpoint (the server's base URL, …/v1)")
        headers = {"Content-Type": "application/json"}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise JudgeError(f"the environment variable {api_key_env} (the API key) is not set")
            headers["Authorization"] = f"Bearer {key}"
        self.url = endpoint.rstrip("/") + "/chat/completions"
        self.model = model
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.requests_sent = 0
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)), headers=headers, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def complete(self, messages: list[dict[str, str]], **params: Any) -> dict[str, Any]:
        """POST one chat completion and return the decoded JSON body."""
        body = {"model": self.model, "messages": messages, **params}
        attempt = 0
        while True:
            attempt += 1
            self.requests_sent += 1
            try:
                response = self._http.post(self.url, json=body)
            except httpx.TransportError as exc:  # connection refused, reset, timeouts
                if attempt > self.max_retries:
                    raise JudgeError(f"{self.url} unreachable after {attempt} attempts: {exc}") from exc
                time.sleep(self._delay(attempt, None))
                continue
            if response.status_code in TRANSIENT_STATUS and attempt <= self.max_retries:
                time.sleep(self._delay(attempt, response.headers.get("retry-after")))
                continue
            if response.status_code >= 400:
                raise JudgeError(f"{self.url} answered {response.status_code}: {response.text[:500]}")
            try:
                return response.json()
            except ValueError as exc:
                raise JudgeError(f"{self.url} answered with something that is not JSON: {response.text[:200]}") from exc

    def chat(self, messages: list[dict[str, str]], *, max_tokens: int = 256, temperature: float = 0.0) -> str:
        """The assistant's text for one conversation."""
        data = self.complete(messages, max_tokens=max_tokens, temperature=temperature)
        try:
            return data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise JudgeError(f"unexpected chat completion shape: {str(data)[:300]}") from exc

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), MAX_RETRY_AFTER_S)
            except ValueError:
                pass
        return self.backoff_s * 2 ** (attempt - 1)


_clients: dict[tuple, ChatClient] = {}
_lock = threading.Lock()


def chat_client(
    endpoint: str,
    model: str,
    *,
    api_key_env: str = "",
    timeout_s: float = 60.0,
    max_retries: int = 3,
    backoff_s: float = 0.5,
) -> ChatClient:
    """One client (one connection pool) per endpoint, model, key and retry policy per process."""
    # The key's hash is part of the cache key so that a rotated key gets a fresh client.
    secret = os.environ.get(api_key_env, "") if api_key_env else ""
    key = (endpoint, model, api_key_env, timeout_s, max_retries, backoff_s, hashlib.sha256(secret.encode()).hexdigest())
    with _lock:
        if key not in _clients:
            _clients[key] = ChatClient(
                endpoint,
                model,
                api_key_env=api_key_env,
                timeout_s=timeout_s,
                max_retries=max_retries,
                backoff_s=backoff_s,
            )
        return _clients[key]
