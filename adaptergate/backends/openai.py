"""The ``openai`` backend: a multi-LoRA server the team already runs (vLLM, SGLang, LoRAX).

The gate talks to an OpenAI-compatible endpoint (``--server-url``):

* **Identity first.** ``GET /v1/models`` must list the gate's base model (its
  ``id`` or ``root``, or the same last path component): answers from another
  base are not this gate's answers. Else exit 2.
* **Adapters.** An adapter given as a directory is registered with the
  server's runtime-loading endpoint (vLLM ``POST /v1/load_lora_adapter``,
  SGLang ``POST /load_lora_adapter``) under a name derived from its weights'
  sha256 (``ag-<sha16>``: concurrent pull requests never collide, the same
  bytes share one name), and unloaded afterwards if this run loaded it. The
  server must be able to read that directory (a shared volume, or the
  runner's workspace when they share a filesystem). An adapter that is not a
  local directory is the name of one the server already serves (LoRAX-style
  adapter ids); it must be listed by ``/v1/models``. A refusal is exit 2.
* **Scoring.** ``POST /v1/completions``, greedy, ``max_tokens`` as the gate's
  policy, answers cut at the stop strings like every backend. Requests run
  concurrently (``--server-concurrency``) with timeouts and retries with
  backoff on 5xx/429 (:mod:`adaptergate.backends.http`); a request that still
  fails is exit 3 naming the query. Teacher-forced exact match uses
  ``prompt_logprobs`` where the server offers it (and its ``/tokenize``): one
  request per row holding prompt + gold token ids; a row passes iff every gold
  token is the server's rank-1 token and its next greedy token is EOS.
  Otherwise the gate generates, and the report says which.

The API key comes from an environment variable the *workflow* names
(``--server-api-key-env``), never from content under review, and is scrubbed
from every message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from adaptergate.backends.base import BackendStats, GenerationSettings, Progress, cut_at_stop
from adaptergate.backends.http import HttpClient, ServerError, message_of
from adaptergate.errors import EvaluationError, InvalidInputError

__all__ = ["RowError", "ServerBackend", "served_name"]

DEFAULT_CONCURRENCY = 8


class RowError(EvaluationError):
    """A request for one row failed for good; ``row`` is its index in the call."""

    def __init__(self, message: str, row: int) -> None:
        super().__init__(message)
        self.row = row


def served_name(adapter_dir: Path) -> str:
    """The name an adapter directory is registered under: ``ag-`` + its weights' sha256."""
    from adaptergate.backends.files import file_sha256

    weights = Path(adapter_dir) / "adapter_model.safetensors"
    if not weights.is_file():
        raise InvalidInputError(f"adapter {adapter_dir}: no adapter_model.safetensors")
    return "ag-" + file_sha256(weights)[:16]


def _same_model(name: str, entry: dict[str, Any]) -> bool:
    """Whether a ``/v1/models`` entry is the model the gate names (id, root, or last path part)."""
    wanted = str(name).rstrip("/")
    have = [str(v).rstrip("/") for v in (entry.get("id"), entry.get("root")) if v]
    if wanted in have:
        return True
    # a local copy named after the hub id it came from (models/llama-3.1-8b for meta-llama/Llama-3.1-8B)
    last = wanted.rsplit("/", 1)[-1].casefold()
    return any(h.rsplit("/", 1)[-1].casefold() == last for h in have)


class ServerBackend:
    """Base + adapters served by an OpenAI-compatible server (:class:`~adaptergate.backends.base.Backend`)."""

    name = "openai"
    auto_teacher_forcing = False
    """``--eval-mode auto`` generates here: vLLM computes prompt log-probabilities of LoRA requests
    batched together with the wrong adapter mapping and its engine dies (vllm-project/vllm#16668),
    so on a shared server teacher forcing is asked for explicitly, and sent one row at a time."""

    def __init__(self, base: str | Path, adapters: dict[str, Path], settings: GenerationSettings | None = None) -> None:
        self.settings = settings or GenerationSettings()
        self.stats = BackendStats()
        opts = self.settings.options
        url = opts.get("server_url")
        if not url:
            raise InvalidInputError("--backend openai needs --server-url (an OpenAI-compatible server)")
        self.client = HttpClient(
            str(url), api_key=opts.get("api_key"), timeout=float(opts.get("timeout") or 120.0),
            retries=int(opts.get("retries", 3)), backoff=float(opts.get("backoff", 0.5)),
        )
        self.concurrency = max(1, int(opts.get("concurrency") or DEFAULT_CONCURRENCY))
        self.device = f"server {self.client.shown}"
        self._loaded: list[str] = []
        try:
            models = self._models()
            entry = next((m for m in models if m.get("parent") in (None, "") and _same_model(str(base), m)), None)
            if entry is None:
                served = ", ".join(str(m.get("id")) for m in models if m.get("parent") in (None, "")) or "nothing"
                raise InvalidInputError(
                    f"server {self.client.shown} serves {served}, not the gate's base model {base}: its answers"
                    " would not be this base's (start it on the same base, or name the base it serves)"
                )
            self.model = str(entry["id"])
            self._root = str(entry.get("root") or entry["id"])
            self._version = self._server_version()
            listed = {str(m.get("id")) for m in models}
            self.names = {role: self._adapter(role, Path(path), listed) for role, path in adapters.items()}
            self._tokenize_ok = self._probe_tokenize()
            self.supports_teacher_forcing = self._tokenize_ok
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ setup

    def _models(self) -> list[dict[str, Any]]:
        response = self.client.request("GET", "/v1/models", what="the list of models")
        if response.status_code != 200:
            raise InvalidInputError(
                f"server {self.client.shown}: GET /v1/models answered {response.status_code}: {message_of(response)}"
            )
        data = response.json().get("data")
        return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []

    def _adapter(self, role: str, path: Path, listed: set[str]) -> str:
        if not path.is_dir():
            name = str(path)
            if name not in listed:
                raise InvalidInputError(
                    f"{role} adapter {name}: not a local directory, and the server {self.client.shown} does not"
                    " serve an adapter of that name"
                )
            return name
        name = served_name(path)
        if name in listed:
            return name  # the same bytes are already served (another run loaded them)
        body = {"lora_name": name, "lora_path": str(path.resolve())}
        what = f"loading the {role} adapter"
        try:
            response = self.client.request("POST", "/v1/load_lora_adapter", json=body, what=what)
            if response.status_code == 404 and "adapter" not in message_of(response).lower():
                response = self.client.request("POST", "/load_lora_adapter", json=body, what=what)
        except ServerError as exc:
            if exc.status is None:
                raise  # no answer: the server is down or unreachable (exit 3)
            # vLLM answers 500 for an adapter it cannot take (a rank above --max-lora-rank): the
            # same answer after every retry is a refusal of this adapter, not an outage
            raise InvalidInputError(
                f"server {self.client.shown} refused the {role} adapter {path} (HTTP {exc.status}:"
                f" {exc.last_message}); its --max-lora-rank and LoRA settings must fit the adapter"
            ) from None
        if response.status_code == 400 and "already" in message_of(response).lower():
            return name  # loaded concurrently by another run: not ours to unload
        if response.status_code != 200:
            raise InvalidInputError(
                f"server {self.client.shown} refused the {role} adapter {path} ({response.status_code}:"
                f" {message_of(response)}); runtime LoRA loading must be on (vLLM:"
                " VLLM_ALLOW_RUNTIME_LORA_UPDATING=True) and the server must be able to read the directory"
            )
        self._loaded.append(name)
        return name

    def _server_version(self) -> str:
        response = self.client.request("GET", "/version", what="/version")
        if response.status_code == 200:
            try:
                return str(response.json().get("version") or "")
            except ValueError:
                return ""
        return ""

    def _probe_tokenize(self) -> bool:
        response = self.client.request("POST", "/tokenize", json={"model": self.model, "prompt": "a",
                                                                   "add_special_tokens": False}, what="/tokenize")
        return response.status_code == 200 and isinstance(response.json().get("tokens"), list)

    def _tokens(self, texts: Sequence[str], *, special: bool, chat: bool = False) -> list[list[int]]:
        """Token ids from the server's ``/tokenize`` (``chat``: each text as a user turn through the
        chat template, with the generation prompt)."""
        def one(text: str) -> list[int]:
            body: dict[str, Any] = {"model": self.model, "add_special_tokens": special}
            if chat:
                body.update(messages=[{"role": "user", "content": text}], add_generation_prompt=True)
            else:
                body["prompt"] = text
            response = self.client.request("POST", "/tokenize", json=body, what="/tokenize")
            if response.status_code != 200:
                raise EvaluationError(f"server {self.client.shown}: /tokenize answered {response.status_code}:"
                                      f" {message_of(response)}")
            return [int(t) for t in response.json()["tokens"]]

        return self._map(one, list(texts), progress=None)

    # ------------------------------------------------------------ Backend

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name, "server": self.client.shown, "model": self._root,
                "engine": self._version or "unknown", "dtype": self.settings.dtype,
                "quantize": self.settings.quantize}

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not self._tokenize_ok:
            raise InvalidInputError(
                f"server {self.client.shown} has no /tokenize: give --max-new-tokens (answers cannot be sized"
                " by the gold answers)"
            )
        return [len(t) for t in self._tokens(texts, special=False)]

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is None:
            return
        for name in self._loaded:
            try:
                client.request("POST", "/v1/unload_lora_adapter", json={"lora_name": name},
                               what="unloading an adapter")
            except ServerError:
                pass  # the server is going away or already forgot it: nothing to leave behind
        self._loaded = []
        client.close()
        self.client = None  # type: ignore[assignment]

    def _map(self, fn: Callable[[Any], Any], items: list[Any], progress: Progress | None,
             concurrency: int | None = None) -> list[Any]:
        """``fn`` over ``items`` with at most ``concurrency`` requests in flight, results in order."""
        out: list[Any] = [None] * len(items)

        def run(i: int) -> None:
            try:
                out[i] = fn(items[i])
            except EvaluationError as exc:
                raise RowError(exc.message, i) from exc
            if progress:
                progress(1)

        t0 = time.perf_counter()
        errors: list[BaseException] = []
        pool = ThreadPoolExecutor(max_workers=concurrency or self.concurrency)
        try:
            futures = [pool.submit(run, i) for i in range(len(items))]
            for future in as_completed(futures):
                exc = future.exception()
                if exc is not None:
                    errors.append(exc)
                    break  # one row failed for good: the gate fails, do not wait for the rest
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        self.stats.seconds += time.perf_counter() - t0
        self.stats.forward_passes += len(items)
        if errors:
            raise min(errors, key=lambda e: getattr(e, "row", 0))
        return out

    def _complete(self, body: dict[str, Any], path: str = "/v1/completions") -> dict[str, Any]:
        response = self.client.request("POST", path, json=body, what="a completion")
        if response.status_code != 200:
            raise EvaluationError(
                f"server {self.client.shown} answered {response.status_code}: {message_of(response)}"
            )
        return response.json()

    def generate(self, prompts: Sequence[str], adapters: Sequence[str], *, max_new_tokens: int,
                 progress: Progress | None = None) -> list[str]:
        chat = self.settings.chat_template

        def one(row: tuple[str, str]) -> str:
            prompt, role = row
            body: dict[str, Any] = {"model": self.names[role], "max_tokens": max_new_tokens, "temperature": 0.0,
                                    "seed": 0}
            if chat:  # the server applies the tokenizer's chat template
                body["messages"] = [{"role": "user", "content": prompt}]
                reply = self._complete(body, "/v1/chat/completions")
                choice = (reply.get("choices") or [{}])[0]
                text = str((choice.get("message") or {}).get("content") or "")
            else:
                body.update(prompt=prompt, return_token_ids=True)
                reply = self._complete(body)
                choice = (reply.get("choices") or [{}])[0]
                text = self._decoded(choice) if isinstance(choice.get("token_ids"), list) \
                    else str(choice.get("text") or "")
            self.stats.generated_tokens += int((reply.get("usage") or {}).get("completion_tokens") or 0)
            return cut_at_stop(text, self.settings.stop)

        return self._map(one, list(zip(prompts, adapters)), progress)

    def _decoded(self, choice: dict[str, Any]) -> str:
        """The answer decoded from its token ids as the PEFT backend decodes (the server's own
        incremental text keeps a leading space the tokenizer's ``decode`` drops)."""
        tokens = [int(t) for t in choice["token_ids"]]
        if tokens and choice.get("finish_reason") == "stop" and choice.get("stop_reason") is None:
            tokens = tokens[:-1]  # the EOS it stopped at
        if not tokens:
            return ""
        response = self.client.request("POST", "/detokenize", json={"model": self.model, "tokens": tokens},
                                       what="/detokenize")
        if response.status_code != 200:
            raise EvaluationError(f"server {self.client.shown}: /detokenize answered {response.status_code}:"
                                  f" {message_of(response)}")
        return str(response.json().get("prompt") or "")

    def teacher_forced(self, prompts: Sequence[str], golds: Sequence[str], adapters: Sequence[str],
                       progress: Progress | None = None) -> tuple[list[bool], list[float]]:
        if not self.supports_teacher_forcing:
            raise InvalidInputError(f"server {self.client.shown} has no /tokenize: teacher forcing needs it"
                                    " (use --eval-mode generate)")
        chat = self.settings.chat_template
        p_ids = self._tokens(prompts, special=not chat, chat=chat)
        g_ids = self._tokens(golds, special=False)

        def one(row: tuple[list[int], list[int], str]) -> tuple[bool, float]:
            p, g, role = row
            reply = self._complete({"model": self.names[role], "prompt": p + g, "max_tokens": 1,
                                    "temperature": 0.0, "seed": 0, "prompt_logprobs": 0})
            choice = (reply.get("choices") or [{}])[0]
            entries = choice.get("prompt_logprobs")
            if not isinstance(entries, list):
                raise InvalidInputError(f"server {self.client.shown} returns no prompt_logprobs: teacher forcing"
                                        " needs them (use --eval-mode generate)")
            seq = p + g
            ok, total = True, 0.0
            for pos in range(len(p), len(seq)):
                info = (entries[pos] or {}).get(str(seq[pos])) if pos < len(entries) else None
                if info is None:
                    raise EvaluationError(f"server {self.client.shown} returned no log-probability for a gold token")
                ok = ok and int(info.get("rank", 0)) == 1
                total += float(info.get("logprob", 0.0))
            # the greedy token after the gold must be EOS: an empty completion that stopped
            ended = choice.get("finish_reason") == "stop" and not choice.get("text")
            return ok and ended, total

        # one row at a time: prompt log-probabilities of LoRA requests batched together are wrong (and
        # kill the engine) in vLLM (vllm-project/vllm#16668)
        results = self._map(one, list(zip(p_ids, g_ids, adapters)), progress, concurrency=1)
        return [r[0] for r in results], [r[1] for r in results]
