"""The URL judge: :class:`UrlJudge`, an OpenAI-compatible ``/v1/chat/completions``
server as the judge (urllib; no extra dependency), and :func:`chat_endpoint`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from adaptergate.errors import EvaluationError
from adaptergate.metrics.judge.prompts import build_messages, repair_message
from adaptergate.metrics.judge.replies import (
    JudgeOutputError,
    Judgement,
    parse_judgement,
    response_format,
    shorten,
)
from adaptergate.metrics.judge.request import JudgeRequest, JudgeStats, still_malformed
from adaptergate.metrics.judge.settings import JudgeSettings
from adaptergate.trust import public_url, register_secret

__all__ = ["UrlJudge", "chat_endpoint"]


def chat_endpoint(url: str) -> str:
    """``…/chat/completions`` as given; ``…/v1`` + ``/chat/completions``; else + ``/v1/chat/completions``."""
    base = url.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if base.endswith("/v1"):
        return base + "/chat/completions"
    return base + "/v1/chat/completions"


class _HttpError(Exception):
    def __init__(self, status: int | None, body: str) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


class UrlJudge:
    """An OpenAI-compatible ``/v1/chat/completions`` server (urllib; no extra dependency)."""

    kind = "url"

    def __init__(self, settings: JudgeSettings) -> None:
        import os

        assert settings.url is not None and settings.name is not None
        self.settings = settings
        self.endpoint = chat_endpoint(settings.url)
        self.identity = f"url:{self.endpoint} model:{settings.name}"
        self.label = f"{settings.name} at {public_url(self.endpoint)}"
        self._key = os.environ.get(settings.api_key_env) or None
        register_secret(self._key)  # never shown: scrubbed from every error and report
        self._format = "json_schema"
        self.stats = JudgeStats()
        self._sleep = time.sleep

    def key_fields(self) -> dict[str, Any]:
        return {"judge": self.identity}

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        import urllib.error
        import urllib.request

        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        request = urllib.request.Request(self.endpoint, data=data, headers=headers, method="POST")
        self.stats.calls += 1
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as resp:  # noqa: S310
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            try:
                text = exc.read().decode("utf-8", "replace")
            except Exception:  # noqa: BLE001
                text = ""
            raise _HttpError(exc.code, text or str(exc.reason)) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _HttpError(None, f"{type(exc).__name__}: {reason}") from None
        try:
            return json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise _HttpError(200, "the response body is not JSON: " + raw[:200].decode("utf-8", "replace")) from None

    def _complete(self, req: JudgeRequest, messages: list[dict[str, str]]) -> Any:
        """One completion's text content (None when the server sent none); transport retries inside."""
        transport_failures = 0
        while True:
            body = {
                "model": self.settings.name, "messages": messages, "temperature": 0,
                "response_format": response_format(
                    self.settings.criteria, pairwise=req.pairwise, kind=self._format
                ),
            }
            try:
                doc = self._post(body)
            except _HttpError as exc:
                if exc.status == 400 and self._format == "json_schema":
                    self._format = "json_object"  # the server does not do json_schema: ask for JSON mode
                    continue
                if exc.status in (401, 403, 404, 400, 422):
                    raise EvaluationError(
                        f"judge server {public_url(self.endpoint)} answered {exc.status} for query {req.query_id!r}:"
                        f" {shorten(exc.body)}"
                    ) from None
                transport_failures += 1
                if transport_failures > self.settings.retries:
                    what = f"HTTP {exc.status}" if exc.status else "no answer"
                    raise EvaluationError(
                        f"judge server {public_url(self.endpoint)} failed for query {req.query_id!r} ({what} after"
                        f" {transport_failures} attempts): {shorten(exc.body)}"
                    ) from None
                self._sleep(min(8.0, 0.5 * 2 ** (transport_failures - 1)))
                continue
            try:
                return doc["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError):
                return None

    def judge_one(self, req: JudgeRequest) -> Judgement:
        criteria = self.settings.criteria
        messages = build_messages(criteria, req.prompt, req.gold, req.answers)
        why = ""
        for attempt in range(self.settings.retries + 1):
            content = self._complete(req, messages)
            try:
                return parse_judgement(content, criteria, pairwise=req.pairwise)
            except JudgeOutputError as exc:
                why = str(exc)
            if attempt < self.settings.retries:
                self.stats.repairs += 1
                messages = [
                    *messages,
                    {"role": "assistant", "content": content if isinstance(content, str) else ""},
                    repair_message(why, criteria, req.pairwise),
                ]
        raise still_malformed(req, self.settings.retries + 1, why)

    def judge(self, requests: Sequence[JudgeRequest], done: Callable[[int, Judgement], None]) -> None:
        t0 = time.perf_counter()
        try:
            if self.settings.concurrency == 1 or len(requests) == 1:
                for k, req in enumerate(requests):
                    done(k, self.judge_one(req))
                return
            from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

            with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
                futures = {pool.submit(self.judge_one, req): k for k, req in enumerate(requests)}
                pending = set(futures)
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for fut in sorted(finished, key=lambda f: futures[f]):
                        if fut.exception() is None:
                            done(futures[fut], fut.result())
                    errors = [f for f in finished if f.exception() is not None]
                    if errors:
                        for fut in pending:
                            fut.cancel()
                        raise min(errors, key=lambda f: futures[f]).exception()  # type: ignore[misc]
        finally:
            self.stats.seconds += time.perf_counter() - t0

    def close(self) -> None:
        pass
