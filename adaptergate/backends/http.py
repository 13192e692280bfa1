"""The one HTTP client of the server backends: timeouts, retries with backoff, secrets kept home.

Built on httpx. A request is retried on connection errors, timeouts, 5xx and
429 (honouring ``Retry-After``), with exponential backoff; any other status is
answered at once. The API key travels only in the ``Authorization`` header, is
registered with :func:`adaptergate.trust.register_secret` (scrubbed from every
message a user sees), and URLs are shown without credentials
(:func:`adaptergate.trust.public_url`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from adaptergate.errors import EvaluationError, InvalidInputError
from adaptergate.trust import public_url, register_secret

__all__ = ["HttpClient", "ServerError", "message_of"]

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class ServerError(EvaluationError):
    """A request that failed for good: ``status`` is the last HTTP status (None: no answer)."""

    def __init__(self, message: str, *, status: int | None, attempts: int, last_message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts
        self.last_message = last_message
        """The server's own message in its last answer (empty when it did not answer)."""


@dataclass
class HttpClient:
    """A client for one server (``base_url``), shared by the threads of one gate."""

    base_url: str
    api_key: str | None = None
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0

    def __post_init__(self) -> None:
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - httpx is a dependency
            raise InvalidInputError(f"the server backend needs httpx ({exc})") from None
        if not self.base_url.startswith(("http://", "https://")):
            raise InvalidInputError(f"--server-url must be an http(s) URL, got {public_url(self.base_url)!r}")
        register_secret(self.api_key)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self.shown = public_url(self.base_url.rstrip("/"))
        # trust_env=False: no proxy or netrc from the environment decides where answers (and the key) go
        self._client = httpx.Client(base_url=self.base_url.rstrip("/"), headers=headers, trust_env=False,
                                    timeout=httpx.Timeout(self.timeout), follow_redirects=False)
        self._httpx = httpx
        self.sleep = time.sleep

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, *, json: Any = None, what: str = "") -> Any:
        """The response of ``method path`` after retries (any status but a retried one)."""
        httpx = self._httpx
        last_status: int | None = None
        retry_after: float | None = None
        why, said = "", ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(self._delay(attempt, retry_after))
                retry_after = None
            try:
                response = self._client.request(method, path, json=json)
            except httpx.TimeoutException:
                why, last_status, said = f"no answer within {self.timeout:g} s", None, ""
                continue
            except httpx.TransportError as exc:
                why, last_status, said = f"cannot reach it ({type(exc).__name__})", None, ""
                continue
            if response.status_code not in RETRY_STATUSES:
                return response
            last_status, said = response.status_code, message_of(response)
            why = f"HTTP {response.status_code}: {said}"
            retry_after = _retry_after(response)
        where = f" for {what}" if what else ""
        raise ServerError(
            f"server {self.shown} failed{where}: {why} (after {self.retries + 1} attempts)",
            status=last_status, attempts=self.retries + 1, last_message=said,
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        wait = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return max(wait, min(retry_after or 0.0, 60.0))


def _retry_after(response: Any) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def message_of(response: Any) -> str:
    """The server's error message, one line, cut (never the whole body)."""
    try:
        body = response.json()
        msg = body.get("error", body) if isinstance(body, dict) else body
        if isinstance(msg, dict):
            msg = msg.get("message") or msg.get("detail") or msg
        text = str(msg)
    except ValueError:
        text = response.text
    text = " ".join(text.split())
    return text[:300] + ("…" if len(text) > 300 else "")

