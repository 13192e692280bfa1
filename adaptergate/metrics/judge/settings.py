"""The judge's settings: :class:`JudgeSettings`, everything that chooses a judge
(``--judge-*``), and their defaults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptergate.errors import UsageError
from adaptergate.metrics.judge.criteria import DEFAULT_CRITERIA, Criterion, check_criteria, load_criteria

__all__ = ["DEFAULT_REASONING_TOKENS", "DEFAULT_TIMEOUT_S", "JUDGE_METRIC", "JudgeSettings"]

JUDGE_METRIC = "judge"
DEFAULT_REASONING_TOKENS = 48
DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class JudgeSettings:
    """Everything that chooses a judge (``ModelInputs.judge``)."""

    criteria: tuple[Criterion, ...] = DEFAULT_CRITERIA
    model: Path | None = None
    url: str | None = None
    name: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    pairwise: bool = False
    retries: int = 2
    reasoning_tokens: int = DEFAULT_REASONING_TOKENS
    concurrency: int = 4
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if (self.model is None) == (self.url is None):
            raise UsageError(
                "--metric judge needs exactly one judge: --judge-model DIR (a local causal LM) or"
                " --judge-url URL (an OpenAI-compatible server)"
            )
        if self.url is not None:
            if not self.url.startswith(("http://", "https://")):
                raise UsageError(f"--judge-url must be an http(s) URL, got {self.url!r}")
            if not self.name:
                raise UsageError("--judge-url needs --judge-name (the model name the server serves)")
        if self.retries < 0:
            raise UsageError(f"--judge-retries must be >= 0, got {self.retries}")
        if self.reasoning_tokens < 0:
            raise UsageError(f"--judge-reasoning-tokens must be >= 0, got {self.reasoning_tokens}")
        if self.concurrency < 1:
            raise UsageError(f"--judge-concurrency must be >= 1, got {self.concurrency}")
        if not self.criteria:
            raise UsageError("the judge needs at least one criterion")

    @classmethod
    def from_options(
        cls, *, criteria: Path | str | list[Any] | None = None, model: Path | None = None,
        url: str | None = None, name: str | None = None, api_key_env: str | None = None,
        pairwise: bool | None = False, retries: int | None = None, reasoning_tokens: int | None = None,
        concurrency: int | None = None, criteria_source: str = "(inline)",
    ) -> "JudgeSettings":
        """From the ``--judge-*`` options (``None``: the default). ``criteria`` is a file, or
        the list itself (a manifest's inline criteria, named ``criteria_source`` in errors)."""
        kw: dict[str, Any] = {}
        if api_key_env is not None:
            kw["api_key_env"] = api_key_env
        if retries is not None:
            kw["retries"] = retries
        if reasoning_tokens is not None:
            kw["reasoning_tokens"] = reasoning_tokens
        if concurrency is not None:
            kw["concurrency"] = concurrency
        crit = check_criteria(criteria, criteria_source) if isinstance(criteria, list) else load_criteria(criteria)
        return cls(criteria=crit, model=model, url=url, name=name, pairwise=bool(pairwise), **kw)
