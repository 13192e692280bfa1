"""The model-backend seam: what scores queries with named LoRA adapters on one base model.

A backend is anything that implements :class:`Backend` — today PEFT in this
process (:mod:`adaptergate.backends.peft`); a serving engine is another module
registered here by name. :func:`open_backend` imports a backend's module only
when it is chosen, so ``import adaptergate`` and the CLI never import torch.

Adding a backend: write ``adaptergate/backends/<name>.py`` with a class that
satisfies :class:`Backend` and whose constructor takes ``(base, adapters,
settings)``, then add one line to :data:`BACKENDS` (or call
:func:`register_backend` from your own code).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from adaptergate.errors import InvalidInputError, UsageError

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendStats",
    "GenerationSettings",
    "ScopedPool",
    "TokenizerText",
    "auto_teacher_forcing",
    "backend_names",
    "cut_at_stop",
    "drop_shared",
    "open_backend",
    "register_backend",
    "shared_models",
]


@dataclass(frozen=True)
class GenerationSettings:
    """How every backend generates and loads: the same stop rules and token policy for all."""

    max_new_tokens: int | None = None
    stop: tuple[str, ...] = ()
    chat_template: bool = False
    batch_size: int = 16
    dtype: str | None = None  # "float32" | "bfloat16" | "float16"; default: bf16 on GPU, fp32 on CPU
    device: str | None = None  # "cpu" | "cuda" | "auto"
    quantize: str | None = None  # "4bit" | "8bit"
    threads: int | None = None
    trust_remote_code: bool = False
    """Let transformers run Python code shipped with the model (``auto_map``): the command line's
    ``--trust-remote-code`` only, never the Action or a manifest."""
    options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """Backend-specific options (a server's URL, tensor parallelism, …)."""

    def key(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens, "stop": list(self.stop),
            "chat_template": self.chat_template, "dtype": self.dtype, "quantize": self.quantize,
        }

    def load_key(self) -> tuple[Any, ...]:
        """What a loaded model depends on: two runs with the same key can share one."""
        return (self.dtype, self.device, self.quantize, self.trust_remote_code)


@dataclass
class BackendStats:
    forward_passes: int = 0
    generated_tokens: int = 0
    mixed_batch_fallbacks: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


Progress = Callable[[int], None]
P = TypeVar("P")


@runtime_checkable
class Backend(Protocol):
    """One base model with named adapters, ready for batched evaluation.

    Rows are ``(prompt, adapter name)`` pairs; results come back in input order.
    """

    name: str
    """The registry name (``peft``)."""
    device: str
    stats: BackendStats
    supports_teacher_forcing: bool
    """Whether :meth:`teacher_forced` scores exact match without decoding. A backend may also say
    ``auto_teacher_forcing = False``: ``--eval-mode auto`` then generates (see :func:`auto_teacher_forcing`)."""

    def identity(self) -> dict[str, Any]:
        """What makes its answers what they are (engine, version, dtype, quantisation): part
        of every cache key, so results of one engine are never reused for another."""
        ...

    def generate(self, prompts: Sequence[str], adapters: Sequence[str], *, max_new_tokens: int,
                 progress: Progress | None = None) -> list[str]:
        """Greedy answers, cut at the settings' stop strings."""
        ...

    def teacher_forced(self, prompts: Sequence[str], golds: Sequence[str], adapters: Sequence[str],
                       progress: Progress | None = None) -> tuple[list[bool], list[float]]:
        """Whether greedy decoding would reproduce each gold answer (and its log-probability)."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Each text's length in the base model's tokens (sizing ``max_new_tokens``)."""
        ...

    def close(self) -> None:
        """Release the model (idempotent)."""
        ...


BACKENDS: dict[str, str] = {
    "peft": "adaptergate.backends.peft:AdapterRunner",
    "vllm": "adaptergate.backends.vllm:VllmBackend",
    "openai": "adaptergate.backends.openai:ServerBackend",
}
"""Backend name -> ``module:class``, imported only when chosen."""


def register_backend(name: str, target: str) -> None:
    """Make ``name`` choosable (``target`` is ``module:class``)."""
    BACKENDS[name] = target


def backend_names() -> tuple[str, ...]:
    return tuple(BACKENDS)


def open_backend(name: str, base: str | Path, adapters: dict[str, Path], settings: GenerationSettings) -> Backend:
    """Load ``base`` with ``adapters`` on the backend registered as ``name``."""
    target = BACKENDS.get(name)
    if target is None:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    module, _, cls = target.partition(":")
    backend = getattr(importlib.import_module(module), cls)(base, adapters, settings)
    return backend


class ScopedPool(Generic[P]):
    """A model pool (anything with ``clear()``) that exists inside :meth:`scope` only: backends
    opened there borrow from it (:meth:`current`), and it is cleared when the scope ends or
    on :meth:`drop` (room for another model, e.g. a local judge)."""

    def __init__(self, name: str, factory: Callable[[], P]) -> None:
        self._var: ContextVar[P | None] = ContextVar(name, default=None)
        self._factory = factory

    def current(self) -> P | None:
        return self._var.get()

    @contextmanager
    def scope(self) -> Iterator[P]:
        pool = self._factory()
        token = self._var.set(pool)
        try:
            yield pool
        finally:
            self._var.reset(token)
            pool.clear()

    def drop(self) -> None:
        pool = self._var.get()
        if pool is not None:
            pool.clear()


SHARING: dict[str, tuple[str, str]] = {
    "peft": ("adaptergate.backends.peft:shared_base", "adaptergate.backends.peft:drop_shared_base"),
    "vllm": ("adaptergate.backends.vllm:shared_engine", "adaptergate.backends.vllm:drop_shared_engine"),
}
"""Backends that can keep a loaded model across jobs: name -> (context manager, drop function)."""


def _target(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


@contextmanager
def shared_models() -> Iterator[None]:
    """Jobs run inside share loaded models: tenants on one base load it once (PEFT), or score
    on one engine (vLLM). Each backend's module is imported here, neither torch nor vLLM."""
    with ExitStack() as stack:
        for enter, _ in SHARING.values():
            stack.enter_context(_target(enter)())
        yield


def drop_shared() -> None:
    """Free every shared model now (room for another model, e.g. a local judge)."""
    for _, drop in SHARING.values():
        _target(drop)()


def auto_teacher_forcing(backend: Backend) -> bool:
    """Whether ``--eval-mode auto`` teacher-forces exact match on this backend."""
    return bool(backend.supports_teacher_forcing and getattr(backend, "auto_teacher_forcing", True))


class TokenizerText:
    """Prompt text and token counts through a Hugging Face tokenizer (``self.tokenizer``) under
    the job's settings (``self.settings``): the in-process backends share it, so PEFT and vLLM
    see the same token ids for the same prompt."""

    tokenizer: Any
    settings: GenerationSettings

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(x) for x in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def format_prompt(self, prompt: str) -> str:
        """The prompt as the model sees it (through the chat template with ``--chat-template``)."""
        if not self.settings.chat_template:
            return prompt
        if not getattr(self.tokenizer, "chat_template", None):
            raise InvalidInputError("--chat-template was asked for but the tokenizer has none")
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """``text`` up to the first of the stop strings (every backend cuts answers the same way)."""
    cut = len(text)
    for s in stops:
        if s:
            k = text.find(s)
            if k != -1:
                cut = min(cut, k)
    return text[:cut]
