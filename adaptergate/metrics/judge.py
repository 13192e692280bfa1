"""The ``judge`` metric: an LLM grades each answer on weighted criteria.

Many tenants have no single gold string: an answer is judged on accuracy,
relevance, style, completeness and coherence. ``--metric judge`` generates
the baseline's and the candidate's answers (generation mode is forced), then
asks a judge to score every answer:

* a local causal LM (``--judge-model DIR``, loaded as the base model is, no
  adapter), whose output is *constrained* to the contract below, or
* an OpenAI-compatible server (``--judge-url URL``, ``--judge-name MODEL``,
  the API key from the environment variable ``--judge-api-key-env``,
  default ``OPENAI_API_KEY``; no key sends no ``Authorization`` header).

Criteria
--------

``--judge-criteria FILE`` (JSON or YAML): a list of ``{name, weight, rubric}``
(or ``{"criteria": [...]}``). Names: a letter, then letters, digits, ``_`` or
``-`` (at most 40); weights finite and > 0 (default 1); rubrics non-empty.
The default (:data:`DEFAULT_CRITERIA`): accuracy x2.0, relevance x1.5,
style x1.0, completeness x1.5, coherence x1.0.

The output contract
-------------------

The judge answers with exactly one JSON object::

    {"scores": {"accuracy": 8, "relevance": 9, ...}, "reasoning": "..."}

``scores`` holds every criterion, no other key, each an integer 1..10 (a JSON
integer: ``7.0``, ``"7"`` and ``true`` are refused); ``reasoning`` is a
string; no other top-level key; duplicate keys are refused. Pairwise
(``--judge-pairwise``) the object is
``{"scores": {"A": {...}, "B": {...}}, "reasoning": "..."}``. Surrounding
whitespace and ONE enclosing Markdown fence (```` ```json ```` or ```` ``` ````)
are accepted -- models add them even in JSON mode and they carry nothing --
but any other text around the object is refused (:func:`parse_judgement`).

A reply that breaks the contract is answered with a repair message naming
the problem, up to ``--judge-retries`` times (default 2); after that the run
ends with an :class:`~adaptergate.errors.EvaluationError` naming the query
(exit 3). A malformed judgement never becomes a score of 0.

Scores
------

A query's score is the weighted mean of its criterion scores mapped to
0..100 by ``(s - 1) / 9 * 100``, divided by 100 for the gate: in ``[0, 1]``,
so the stat rule uses its paired-t path. The common "pass at 70,
auto-approve at 85" policy is the manifest's approval bands (``approval:
{floor: 0.70, auto_approve: 0.85}``, :class:`adaptergate.manifest.model.ApprovalPolicy`)
applied to the candidate's aggregate score; this module adds no band
mechanism of its own.

Pairwise mode shows the judge both answers side by side and it scores both.
Which one is "A" is decided per query by a RNG seeded with the query's hash
(:func:`pairwise_swapped`): deterministic, and about half the queries show
the candidate first, so a position bias cancels out on average.

The local backend: constrained decoding
---------------------------------------

The skeleton of the object is written by adaptergate, not by the model.
For each criterion in turn the text so far ends in ``"name":``; the ten
continuations ``" 1,"`` .. ``" 10,"`` (``}`` instead of ``,`` after the last
criterion) are tokenized in context and put in a token trie, and the model
walks the trie greedily: at each branching node the argmax of its
next-token logits *restricted to the trie's children* (one forward pass;
single-child nodes need none). The delimiter in the continuation is what
lets ``1`` and ``10`` compete fairly. The reasoning is then generated
freely (greedy, at most ``reasoning_tokens`` tokens) after ``"reasoning":
"`` and cut at its first unescaped quote; adaptergate closes the object
and validates it like any other reply. When the tokenizer cannot spell the
scores in context (a continuation does not re-tokenize after the prefix, or
decodes without its digits) the item falls back to free generation, parsing
and repair retries.

Caching
-------

Judgements are cached under ``<cache>/judge/`` keyed by the judge's
identity (the local model's weights sha256, dtype and quantisation, or the
URL and model name), the criteria (names, weights, rubrics), the prompt
version, pairwise or not, the query's hash and the answer text(s). The
baseline's answers are cached by the generation cache: re-gating against an
unchanged baseline generates and judges only the candidate.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from adaptergate.errors import EvaluationError, InvalidInputError, UsageError

__all__ = [
    "Criterion",
    "DEFAULT_CRITERIA",
    "JudgeOutputError",
    "JudgeSettings",
    "Judgement",
    "backend_factory",
    "build_messages",
    "judge_answers",
    "criteria_hash",
    "load_criteria",
    "pairwise_swapped",
    "parse_judgement",
    "response_format",
    "weighted_score",
]

JUDGE_METRIC = "judge"
PROMPT_VERSION = 1
"""Bump when the judge prompt or skeleton changes: cached judgements are then redone."""
CACHE_VERSION = 1
SCORE_MIN, SCORE_MAX = 1, 10
MAX_CRITERIA = 20
MAX_RUBRIC_CHARS = 2_000
MAX_REASONING_CHARS = 2_000
MAX_ANSWER_CHARS = 16_000
"""Answers (and prompts) longer than this are cut before they reach the judge."""
DEFAULT_REASONING_TOKENS = 48
DEFAULT_TIMEOUT_S = 120.0
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")


# --------------------------------------------------------------------------- criteria


@dataclass(frozen=True)
class Criterion:
    name: str
    weight: float
    rubric: str


DEFAULT_CRITERIA: tuple[Criterion, ...] = (
    Criterion("accuracy", 2.0, "Facts, numbers and actions are correct; consistent with the reference"
              " answer when one is given."),
    Criterion("relevance", 1.5, "Answers the question that was asked, with nothing off-topic."),
    Criterion("style", 1.0, "Clear and appropriately concise, in the language and tone of the query."),
    Criterion("completeness", 1.5, "Covers everything the query needs; nothing important is missing."),
    Criterion("coherence", 1.0, "Well organised and internally consistent; no contradictions."),
)


def _criteria_error(source: str, why: str) -> InvalidInputError:
    return InvalidInputError(f"--judge-criteria {source}: {why}")


def check_criteria(raw: Any, source: str = "(inline)") -> tuple[Criterion, ...]:
    """Validate criteria given as data (a list, or ``{"criteria": [...]}``)."""
    if isinstance(raw, dict) and set(raw) == {"criteria"}:
        raw = raw["criteria"]
    if not isinstance(raw, list) or not raw:
        raise _criteria_error(source, "expected a non-empty list of {name, weight, rubric}")
    if len(raw) > MAX_CRITERIA:
        raise _criteria_error(source, f"{len(raw)} criteria; at most {MAX_CRITERIA}")
    out: list[Criterion] = []
    seen: set[str] = set()
    for k, item in enumerate(raw, 1):
        where = f"criterion {k}"
        if not isinstance(item, dict):
            raise _criteria_error(source, f"{where} is not an object with name, weight and rubric")
        extra = sorted(set(item) - {"name", "weight", "rubric"})
        if extra:
            raise _criteria_error(source, f"{where} has unknown key(s): {', '.join(map(str, extra))}")
        name = item.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise _criteria_error(
                source, f"{where} name {name!r}: a letter, then letters, digits, '_' or '-' (at most 40)"
            )
        if name in seen:
            raise _criteria_error(source, f"criterion {name!r} is given twice")
        seen.add(name)
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight <= 0:
            raise _criteria_error(source, f"criterion {name!r} weight {weight!r}: a finite number > 0")
        rubric = item.get("rubric")
        if not isinstance(rubric, str) or not rubric.strip():
            raise _criteria_error(source, f"criterion {name!r} needs a rubric (non-empty text)")
        if len(rubric) > MAX_RUBRIC_CHARS:
            raise _criteria_error(source, f"criterion {name!r} rubric is over {MAX_RUBRIC_CHARS} characters")
        out.append(Criterion(name, float(weight), " ".join(rubric.split())))
    return tuple(out)


def load_criteria(path: Path | str | None) -> tuple[Criterion, ...]:
    """Criteria from a JSON or YAML file (``None``: :data:`DEFAULT_CRITERIA`)."""
    if path is None:
        return DEFAULT_CRITERIA
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _criteria_error(str(p), "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _criteria_error(str(p), f"cannot read it ({type(exc).__name__}: {exc})") from None
    from adaptergate.trust import YamlRefusal, json_loads_bounded, yaml_loads_bounded

    if p.suffix.lower() == ".json":
        try:
            data = json_loads_bounded(text)
        except ValueError as exc:
            raise _criteria_error(str(p), f"invalid JSON ({exc})") from None
    else:
        import yaml

        try:
            data = yaml_loads_bounded(text)
        except YamlRefusal as exc:
            raise _criteria_error(str(p), f"line {exc.line}: {exc.reason}") from None
        except yaml.YAMLError as exc:
            # the problem and where, never the file's text (PyYAML's message quotes the line)
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            what = getattr(exc, "problem", None) or type(exc).__name__
            raise _criteria_error(str(p), f"invalid YAML ({what}{where})") from None
    return check_criteria(data, str(p))


def criteria_hash(criteria: Sequence[Criterion]) -> str:
    blob = json.dumps([[c.name, c.weight, c.rubric] for c in criteria], ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:24]


def weighted_score(scores: dict[str, int], criteria: Sequence[Criterion]) -> float:
    """The weighted mean of ``(s - 1) / 9`` over the criteria: a score in [0, 1]."""
    total = sum(c.weight for c in criteria)
    value = sum(c.weight * (scores[c.name] - SCORE_MIN) / (SCORE_MAX - SCORE_MIN) for c in criteria) / total
    return min(1.0, max(0.0, value))


def pairwise_swapped(query_hash: str) -> bool:
    """Whether the candidate is shown as answer A for this query (seeded by its hash)."""
    return random.Random(f"adaptergate-judge-order:{query_hash}").random() < 0.5


# --------------------------------------------------------------------------- settings


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


# --------------------------------------------------------------------------- the contract


class JudgeOutputError(ValueError):
    """A judge reply that breaks the output contract (the message says how)."""


@dataclass(frozen=True)
class Judgement:
    """One validated judge reply: ``scores`` per answer, in the order shown."""

    scores: tuple[dict[str, int], ...]
    reasoning: str

    def to_record(self) -> dict[str, Any]:
        return {"scores": list(self.scores), "reasoning": self.reasoning}


@lru_cache(maxsize=32)
def _validators(names: tuple[str, ...], pairwise: bool) -> Any:
    from typing import Annotated

    from pydantic import ConfigDict, Field, create_model

    fields: dict[str, Any] = {
        f"c{i}": (Annotated[int, Field(ge=SCORE_MIN, le=SCORE_MAX, alias=name)], ...)
        for i, name in enumerate(names)
    }
    config = ConfigDict(extra="forbid", strict=True)
    scores = create_model("JudgeScores", __config__=config, **fields)
    if pairwise:
        scores = create_model(
            "PairwiseScores", __config__=config,
            a=(scores, Field(alias="A")), b=(scores, Field(alias="B")),
        )
    return create_model("Judgement", __config__=config, scores=(scores, ...), reasoning=(str, ...))


def _loc(loc: Sequence[Any], names: tuple[str, ...]) -> str:
    parts = []
    for part in loc:
        if isinstance(part, str) and re.fullmatch(r"c\d+", part) and int(part[1:]) < len(names):
            part = names[int(part[1:])]
        elif part in ("a", "b"):
            part = str(part).upper()
        parts.append(str(part))
    return ".".join(parts)


def _explain(err: dict[str, Any], names: tuple[str, ...]) -> str:
    where = _loc(err.get("loc", ()), names)
    kind = err.get("type", "")
    value = err.get("input")
    if kind == "missing":
        return f"{where} is missing"
    if kind == "extra_forbidden":
        return f"unexpected key {where}"
    if kind in ("greater_than_equal", "less_than_equal"):
        return f"{where} is {value!r}, outside {SCORE_MIN}-{SCORE_MAX}"
    if kind.startswith("int"):
        return f"{where} is {value!r}, not an integer {SCORE_MIN}-{SCORE_MAX}"
    if kind.startswith("string"):
        return f"{where} must be a string"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"{where or 'the reply'} must be a JSON object"
    return f"{where}: {err.get('msg', kind)}"


_FENCE_RE = re.compile(r"\A```[ \t]*(?:json)?[ \t]*\r?\n(.*?)\r?\n?[ \t]*```\Z", re.DOTALL | re.IGNORECASE)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JudgeOutputError(f"key {key!r} appears twice")
        out[key] = value
    return out


def parse_judgement(text: Any, criteria: Sequence[Criterion], *, pairwise: bool = False) -> Judgement:
    """Validate one judge reply against the contract (module docstring).

    Raises :class:`JudgeOutputError` with a short reason; never guesses.
    """
    from pydantic import ValidationError

    if not isinstance(text, str):
        raise JudgeOutputError("the reply has no text content")
    body = text.strip()
    if body.startswith("```"):
        m = _FENCE_RE.match(body)
        if m is None:
            raise JudgeOutputError("unterminated or malformed Markdown fence around the JSON")
        body = m.group(1).strip()
    if not body:
        raise JudgeOutputError("the reply is empty")
    try:
        data = json.loads(body, object_pairs_hook=_no_duplicates)
    except JudgeOutputError:
        raise
    except (ValueError, RecursionError) as exc:
        raise JudgeOutputError(f"not one JSON object ({_short(str(exc), 80)})") from None
    if not isinstance(data, dict):
        raise JudgeOutputError("the reply must be a JSON object")
    names = tuple(c.name for c in criteria)
    try:
        obj = _validators(names, pairwise).model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        why = "; ".join(_explain(e, names) for e in errors[:3])
        if len(errors) > 3:
            why += f" (and {len(errors) - 3} more)"
        raise JudgeOutputError(why) from None

    def as_dict(model: Any) -> dict[str, int]:
        return {name: int(getattr(model, f"c{i}")) for i, name in enumerate(names)}

    scores = (as_dict(obj.scores.a), as_dict(obj.scores.b)) if pairwise else (as_dict(obj.scores),)
    return Judgement(scores=scores, reasoning=obj.reasoning[:MAX_REASONING_CHARS])


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "…"


def output_schema(criteria: Sequence[Criterion], *, pairwise: bool = False) -> dict[str, Any]:
    """The contract as JSON Schema (what ``response_format`` json_schema sends)."""
    scores = {
        "type": "object",
        "properties": {
            c.name: {"type": "integer", "enum": list(range(SCORE_MIN, SCORE_MAX + 1))} for c in criteria
        },
        "required": [c.name for c in criteria],
        "additionalProperties": False,
    }
    if pairwise:
        scores = {
            "type": "object", "properties": {"A": scores, "B": scores}, "required": ["A", "B"],
            "additionalProperties": False,
        }
    return {
        "type": "object",
        "properties": {"scores": scores, "reasoning": {"type": "string"}},
        "required": ["scores", "reasoning"],
        "additionalProperties": False,
    }


def response_format(criteria: Sequence[Criterion], *, pairwise: bool = False, kind: str = "json_schema"
                    ) -> dict[str, Any]:
    if kind == "json_object":
        return {"type": "json_object"}
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "adaptergate_judgement", "strict": True, "schema": output_schema(criteria, pairwise=pairwise),
        },
    }


# --------------------------------------------------------------------------- the prompt


def _example(criteria: Sequence[Criterion], pairwise: bool) -> str:
    one = "{" + ", ".join(f'"{c.name}": <1-10>' for c in criteria) + "}"
    scores = '{"A": ' + one + ', "B": ' + one + "}" if pairwise else one
    return '{"scores": ' + scores + ', "reasoning": "<one or two sentences>"}'


def build_messages(
    criteria: Sequence[Criterion], prompt: str, gold: Any, answers: Sequence[str],
) -> list[dict[str, str]]:
    """Chat messages asking for one judgement (pairwise when two answers are given)."""
    pairwise = len(answers) == 2
    rubric = "\n".join(f"- {c.name} (weight {c.weight:g}): {c.rubric}" for c in criteria)
    what = "two answers (A and B) to the same query" if pairwise else "an answer to a query"
    system = (
        f"You are a strict, impartial judge. You grade {what}.\n"
        f"Score each criterion with an integer from {SCORE_MIN} (very poor) to {SCORE_MAX} (excellent):\n"
        f"{rubric}\n"
        + ("Score A and B independently; their order says nothing about their quality.\n" if pairwise else "")
        + "Reply with only this JSON object, no other text, every criterion present, no other key:\n"
        + _example(criteria, pairwise)
    )
    parts = [f"Query:\n{_clip(prompt)}"]
    if gold is not None:
        ref = gold if isinstance(gold, str) else json.dumps(gold, ensure_ascii=False)
        parts.append(f"Reference answer:\n{_clip(ref)}")
    if pairwise:
        parts.append(f"Answer A:\n{_clip(answers[0])}")
        parts.append(f"Answer B:\n{_clip(answers[1])}")
    else:
        parts.append(f"Answer to grade:\n{_clip(answers[0])}")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ANSWER_CHARS else text[:MAX_ANSWER_CHARS] + "…"


def repair_message(why: str, criteria: Sequence[Criterion], pairwise: bool) -> dict[str, str]:
    return {
        "role": "user",
        "content": f"Your reply was not valid: {why}. Reply again with only the JSON object, exactly"
        f" this shape, integer scores {SCORE_MIN}-{SCORE_MAX}, no other key:\n{_example(criteria, pairwise)}",
    }


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class JudgeRequest:
    query_id: str
    prompt: str
    gold: Any
    answers: tuple[str, ...]

    @property
    def pairwise(self) -> bool:
        return len(self.answers) == 2


@dataclass
class JudgeStats:
    judged: int = 0
    """Judgements made in this run (not from the cache)."""
    cached: int = 0
    repairs: int = 0
    """Malformed replies that were answered with a repair message."""
    fallbacks: int = 0
    """Local items decoded freely because the tokenizer could not spell the scores."""
    calls: int = 0
    """Requests sent to the server, or batched generation steps of the local model."""
    seconds: float = 0.0
    over_context: int = 0
    """Local judge prompts (with room for the reply) longer than the judge model's context."""
    context: int | None = None
    """The local judge model's context window in tokens, where its config says."""


def _failed(req: JudgeRequest, attempts: int, why: str) -> EvaluationError:
    tries = f"{attempts} attempt" + ("" if attempts == 1 else "s")
    return EvaluationError(
        f"judge output for query {req.query_id!r} is still malformed after {tries}: {_short(why)}"
    )


# --------------------------------------------------------------------------- URL backend


def chat_endpoint(url: str) -> str:
    """``…/chat/completions`` as given; ``…/v1`` + ``/chat/completions``; else + ``/v1/chat/completions``."""
    base = url.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if base.endswith("/v1"):
        return base + "/chat/completions"
    return base + "/v1/chat/completions"


def public_url(url: str) -> str:
    """``url`` without credentials, query or fragment: what reports may show."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


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
        from adaptergate.trust import register_secret

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
                        f" {_short(exc.body)}"
                    ) from None
                transport_failures += 1
                if transport_failures > self.settings.retries:
                    what = f"HTTP {exc.status}" if exc.status else "no answer"
                    raise EvaluationError(
                        f"judge server {public_url(self.endpoint)} failed for query {req.query_id!r} ({what} after"
                        f" {transport_failures} attempts): {_short(exc.body)}"
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
        raise _failed(req, self.settings.retries + 1, why)

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


# --------------------------------------------------------------------------- local backend


class LocalJudge:
    """A local causal LM as the judge, its scores chosen by constrained decoding."""

    kind = "model"

    def __init__(self, settings: JudgeSettings, gen: Any, identity: "_Identity") -> None:
        from adaptergate.backends.peft import load_causal_lm

        assert settings.model is not None
        self.settings = settings
        self.identity, self.label = identity.identity, identity.label
        self._key_fields = identity.fields
        self.gen = gen
        self.tokenizer, self.model, self.device = load_causal_lm(settings.model, gen, what="judge model")
        import torch

        self.torch = torch
        self.stats = JudgeStats(context=_context_length(self.model))
        tok = self.tokenizer
        self._chat = bool(getattr(tok, "chat_template", None))
        self._unk = getattr(tok, "unk_token_id", None)

    def key_fields(self) -> dict[str, Any]:
        return self._key_fields

    # ------------------------------------------------------------- text

    def render(self, messages: list[dict[str, str]]) -> str:
        """The chat as prompt text: the tokenizer's chat template, else plain paragraphs."""
        tok = self.tokenizer
        if self._chat:
            for msgs in (messages, _merge_system(messages)):
                try:
                    return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
                except Exception:  # noqa: BLE001 - a template that refuses system roles
                    continue
        return "\n\n".join(m["content"] for m in messages) + "\n\n"

    def encode(self, text: str) -> list[int]:
        # a chat template writes its own BOS; plain text gets the tokenizer's specials
        return self.tokenizer(text, add_special_tokens=not self._chat)["input_ids"]

    # ------------------------------------------------------------- model calls

    def _left_pad(self, seqs: list[list[int]]) -> tuple[Any, Any]:
        torch = self.torch
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[r, width - len(s):] = 1
        return ids.to(self.model.device), mask.to(self.model.device)

    def _next_logits(self, seqs: list[list[int]]) -> Any:
        ids, mask = self._left_pad(seqs)
        with self.torch.no_grad():
            out = self.model(input_ids=ids, attention_mask=mask).logits[:, -1, :]
        self.stats.calls += 1
        return out.float()

    def _generate(self, seqs: list[list[int]], max_new_tokens: int) -> list[str]:
        if max_new_tokens <= 0:
            return [""] * len(seqs)
        ids, mask = self._left_pad(seqs)
        eos = self.tokenizer.eos_token_id
        with self.torch.no_grad():
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                num_beams=1, pad_token_id=self.tokenizer.pad_token_id, eos_token_id=eos,
            )
        self.stats.calls += 1
        texts = []
        for row in out[:, ids.shape[1]:].tolist():
            if eos in row:
                row = row[: row.index(eos)]
            texts.append(self.tokenizer.decode(row, skip_special_tokens=True))
        return texts

    # ------------------------------------------------------------- constrained decoding

    def _trie(self, prefix_ids: list[int], text: str, delim: str) -> dict | None:
        """Token trie of the ten continuations ``" s" + delim`` after ``text`` (None: unspellable)."""
        n = len(prefix_ids)
        for lead in (" ", ""):
            trie: dict = {}
            ok = True
            for s in range(SCORE_MIN, SCORE_MAX + 1):
                full = self.encode(text + f"{lead}{s}{delim}")
                cont = full[n:]
                if full[:n] != prefix_ids or not cont or (self._unk is not None and self._unk in cont[:-1]):
                    ok = False
                    break
                if not "".join(self.tokenizer.decode(cont).split()).startswith(str(s)):
                    ok = False
                    break
                node = trie
                for t in cont:
                    if None in node:  # another score's path ends here: ambiguous
                        ok = False
                        break
                    node = node.setdefault(t, {})
                if not ok or node:  # a path that is a prefix of another
                    ok = False
                    break
                node[None] = (s, lead)
            if ok:
                return trie
        return None

    def _choose_scores(self, texts: list[str], delims: list[str]) -> list[tuple[int, str] | None]:
        """For each text (ending in ``"name":``), the score its model picks by walking the trie."""
        prefixes = [self.encode(t) for t in texts]
        tries = [self._trie(p, t, d) for p, t, d in zip(prefixes, texts, delims)]
        nodes: list[dict | None] = list(tries)
        paths: list[list[int]] = [[] for _ in texts]
        result: list[tuple[int, str] | None] = [None] * len(texts)

        def advance(i: int) -> None:
            node = nodes[i]
            while node is not None and None not in node and len(node) == 1:
                (tok, child), = node.items()
                paths[i].append(tok)
                node = child
            if node is not None and None in node:
                result[i] = node[None]
                node = None
            nodes[i] = node

        for i in range(len(texts)):
            advance(i)
        while True:
            active = [i for i, node in enumerate(nodes) if node is not None]
            if not active:
                return result
            logits = self._next_logits([prefixes[i] + paths[i] for i in active])
            for row, i in enumerate(active):
                node = nodes[i]
                assert node is not None
                allowed = [t for t in node if t is not None]
                scores = logits[row, allowed]
                pick = allowed[int(scores.argmax())]
                paths[i].append(pick)
                nodes[i] = node[pick]
                advance(i)

    def _constrained(self, reqs: list[JudgeRequest]) -> list[Judgement | None]:
        crit = self.settings.criteria
        texts = [self.render(build_messages(crit, r.prompt, r.gold, r.answers)) for r in reqs]
        if self.stats.context:
            # the object the judge writes: ~6 tokens a score, its keys, then the reasoning
            for r, text in zip(reqs, texts):
                reply = 8 * len(crit) * len(r.answers) + 16 + self.settings.reasoning_tokens
                if len(self.encode(text)) + reply > self.stats.context:
                    self.stats.over_context += 1
        ok = [True] * len(reqs)
        scores: list[list[dict[str, int]]] = [[] for _ in reqs]
        groups = [None] if not reqs or not reqs[0].pairwise else ["A", "B"]
        for gi, group in enumerate(groups):
            for ci, c in enumerate(crit):
                head = ""
                if ci == 0:
                    head = '{"scores": {' if gi == 0 else "}, "
                    if group is not None:
                        head += f'"{group}": {{'
                else:
                    head = ", "
                last = ci == len(crit) - 1
                delim = "}" if last else ","
                live = [i for i in range(len(reqs)) if ok[i]]
                for i in live:
                    texts[i] += head + json.dumps(c.name) + ":"
                    if ci == 0:
                        scores[i].append({})
                picks = self._choose_scores([texts[i] for i in live], [delim] * len(live))
                for i, pick in zip(live, picks):
                    if pick is None:
                        ok[i] = False
                        continue
                    s, lead = pick
                    scores[i][-1][c.name] = s
                    texts[i] += f"{lead}{s}"
        tail = "}}" if groups != [None] else "}"
        live = [i for i in range(len(reqs)) if ok[i]]
        for i in live:
            texts[i] += tail + ', "reasoning": "'
        generated = self._generate([self.encode(texts[i]) for i in live], self.settings.reasoning_tokens) \
            if live else []
        out: list[Judgement | None] = [None] * len(reqs)
        for i, raw in zip(live, generated):
            obj = {"scores": scores[i][0] if groups == [None] else {"A": scores[i][0], "B": scores[i][1]},
                   "reasoning": _reasoning_of(raw)}
            # the assembled object goes through the same validation as any reply
            out[i] = parse_judgement(json.dumps(obj, ensure_ascii=False), crit, pairwise=reqs[i].pairwise)
        return out

    def _free(self, req: JudgeRequest) -> Judgement:
        """Free generation, parsing and repair retries (a tokenizer that cannot spell the scores)."""
        crit = self.settings.criteria
        self.stats.fallbacks += 1
        messages = build_messages(crit, req.prompt, req.gold, req.answers)
        budget = 24 + 8 * len(crit) * len(req.answers) + self.settings.reasoning_tokens
        why = ""
        for attempt in range(self.settings.retries + 1):
            text = self._generate([self.encode(self.render(messages))], budget)[0]
            try:
                return parse_judgement(_first_object(text), crit, pairwise=req.pairwise)
            except JudgeOutputError as exc:
                why = str(exc)
            if attempt < self.settings.retries:
                self.stats.repairs += 1
                messages = [*messages, {"role": "assistant", "content": text},
                            repair_message(why, crit, req.pairwise)]
        raise _failed(req, self.settings.retries + 1, why)

    def judge(self, requests: Sequence[JudgeRequest], done: Callable[[int, Judgement], None]) -> None:
        t0 = time.perf_counter()
        self.torch.manual_seed(0)
        size = max(1, self.gen.batch_size)
        try:
            # similar lengths together: less padding
            order = sorted(range(len(requests)), key=lambda k: (len(requests[k].prompt)
                                                                  + sum(len(a) for a in requests[k].answers), k))
            for start in range(0, len(order), size):
                batch = order[start:start + size]
                reqs = [requests[k] for k in batch]
                for k, res in zip(batch, self._constrained(reqs)):
                    done(k, res if res is not None else self._free(requests[k]))
        finally:
            self.stats.seconds += time.perf_counter() - t0

    def close(self) -> None:
        from adaptergate.backends.peft import free_memory

        self.model = None
        free_memory(self.device)


def _context_length(model: Any) -> int | None:
    """The context window a model's config declares (positions it was trained on)."""
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _merge_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    if not messages or messages[0]["role"] != "system":
        return messages
    rest = list(messages[1:])
    if rest and rest[0]["role"] == "user":
        rest[0] = {"role": "user", "content": messages[0]["content"] + "\n\n" + rest[0]["content"]}
        return rest
    return [{"role": "user", "content": messages[0]["content"]}, *rest]


def _reasoning_of(raw: str) -> str:
    """Freely generated reasoning up to its first unescaped quote, unescaped when it can be."""
    cut = len(raw)
    escaped = False
    for k, ch in enumerate(raw):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            cut = k
            break
    piece = raw[:cut]
    try:
        piece = json.loads('"' + piece + '"')
    except ValueError:
        pass
    return " ".join(piece.split())[:MAX_REASONING_CHARS]


def _first_object(text: str) -> str:
    """A free generation up to the end of its first balanced JSON object (strings respected).

    Only what the model wrote after the object is dropped (a model does not
    stop at the closing brace); text *before* the object still fails the
    contract in :func:`parse_judgement`.
    """
    depth = 0
    in_str = escaped = False
    start = None
    for k, ch in enumerate(text):
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "{":
            if start is None:
                start = k
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                end = k + 1
                rest = text[end:].lstrip()
                if rest.startswith("```"):
                    end = len(text) - len(rest) + 3
                return text[:end]
    return text


# --------------------------------------------------------------------------- running the judge


@dataclass
class JudgeOutcome:
    """Judge scores of both adapters' answers, per query."""

    criteria: tuple[Criterion, ...]
    pairwise: bool
    judge: str
    backend: str
    baseline: list[dict[str, int]]
    candidate: list[dict[str, int]]
    baseline_reasoning: list[str]
    candidate_reasoning: list[str]
    swapped: list[bool] | None
    stats: JudgeStats = field(default_factory=JudgeStats)

    def scores(self) -> tuple[Any, Any]:
        import numpy as np

        return (
            np.asarray([weighted_score(s, self.criteria) for s in self.baseline], dtype=np.float64),
            np.asarray([weighted_score(s, self.criteria) for s in self.candidate], dtype=np.float64),
        )

    def summary(self) -> Any:
        from adaptergate.models import JudgeCriterionSummary, JudgeSummary

        n = len(self.baseline)
        rows = []
        for c in self.criteria:
            b = [s[c.name] for s in self.baseline]
            k = [s[c.name] for s in self.candidate]
            mb, mk = (sum(b) / n, sum(k) / n) if n else (0.0, 0.0)
            rows.append(JudgeCriterionSummary(
                name=c.name, weight=c.weight, rubric=c.rubric, baseline=mb, candidate=mk, delta=mk - mb,
                n_worse=sum(1 for x, y in zip(b, k) if y < x), n_better=sum(1 for x, y in zip(b, k) if y > x),
            ))
        return JudgeSummary(
            judge=self.judge, backend=self.backend, pairwise=self.pairwise, criteria=rows,
            n_judged=self.stats.judged, n_cached=self.stats.cached, n_repaired=self.stats.repairs,
            n_candidate_first=sum(self.swapped) if self.swapped is not None else None,
        )


def _judge_cache_path(root: Path, backend: Any, settings: JudgeSettings) -> Path:
    key = json.dumps(
        {"v": CACHE_VERSION, "prompt": PROMPT_VERSION, "criteria": criteria_hash(settings.criteria),
         "pairwise": settings.pairwise, **backend.key_fields()},
        sort_keys=True,
    ).encode("utf-8")
    return root / "judge" / (hashlib.sha256(key).hexdigest()[:40] + ".jsonl")


def _item_key(query_hash: str, answers: Sequence[str]) -> str:
    blob = json.dumps([query_hash, list(answers)], ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:40]


def _read_judge_cache(path: Path, settings: JudgeSettings) -> dict[str, Judgement]:
    out: dict[str, Judgement] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return out
    want = 2 if settings.pairwise else 1
    for line in text.splitlines():
        try:
            rec = json.loads(line)
            scores = rec["scores"]
            obj = {"scores": scores[0] if want == 1 else {"A": scores[0], "B": scores[1]},
                   "reasoning": rec["reasoning"]}
            if len(scores) != want:
                continue
            out[rec["k"]] = parse_judgement(json.dumps(obj), settings.criteria, pairwise=settings.pairwise)
        except (ValueError, KeyError, TypeError, IndexError):
            continue  # a torn or foreign line: that item is judged again
    return out


def backend_factory(settings: JudgeSettings, gen: Any, *, allow_pickle: bool = False) -> Callable[[], Any]:
    """What builds the judge: loading a local model waits until something is left to judge."""
    if settings.url is not None:
        return lambda: UrlJudge(settings)
    return LocalJudgeFactory(settings, gen, allow_pickle=allow_pickle)


def judge_answers(
    settings: JudgeSettings,
    requests_for: Callable[[int], tuple[str, str, Any]],
    hashes: Sequence[str],
    baseline_outputs: Sequence[str | None],
    candidate_outputs: Sequence[str | None],
    *,
    cache_root: Path,
    backend_factory: Callable[[], Any],
    progress: Callable[[int], None] | None = None,
) -> JudgeOutcome:
    """Judge every query's two answers, from the cache where possible.

    ``requests_for(i)`` gives query ``i``'s (id, prompt, gold). The backend
    is built (a local model loaded) only when something is left to judge.
    """
    from adaptergate.storage import locked_append

    n = len(hashes)
    pairwise = settings.pairwise
    swapped = [pairwise_swapped(h) for h in hashes] if pairwise else None
    # what each query needs judged: (key, answers)
    needs: list[list[tuple[str, tuple[str, ...]]]] = []
    for i in range(n):
        b, c = baseline_outputs[i] or "", candidate_outputs[i] or ""
        if pairwise:
            assert swapped is not None
            answers = (c, b) if swapped[i] else (b, c)
            needs.append([(_item_key(hashes[i], answers), answers)])
        else:
            needs.append([(_item_key(hashes[i], (b,)), (b,)), (_item_key(hashes[i], (c,)), (c,))])

    backend: Any = None
    identity_probe = _identity_without_loading(settings, backend_factory)
    results: dict[str, Judgement] = {}
    stats = JudgeStats()
    path: Path | None = None
    if identity_probe is not None:
        path = _judge_cache_path(cache_root, identity_probe, settings)
        results = _read_judge_cache(path, settings)
    # one judgement per distinct (query, answers): identical answers of both adapters are judged once
    todo: dict[str, tuple[int, tuple[str, ...]]] = {}
    hits: set[str] = set()
    for i, items in enumerate(needs):
        for key, answers in items:
            if key in results:
                hits.add(key)
            else:
                todo.setdefault(key, (i, answers))
    stats.cached = len(hits)
    if progress and stats.cached:
        progress(stats.cached)
    label = identity_probe.label if identity_probe is not None else ""
    kind = identity_probe.kind if identity_probe is not None else ""
    if todo:
        backend = backend_factory()
        label, kind = backend.label, backend.kind
        if path is None:
            path = _judge_cache_path(cache_root, backend, settings)
            results.update(_read_judge_cache(path, settings))
            stats.cached += sum(1 for k in todo if k in results)
            todo = {k: v for k, v in todo.items() if k not in results}
        keys = list(todo)
        reqs = []
        for key in keys:
            i, answers = todo[key]
            qid, prompt, gold = requests_for(i)
            reqs.append(JudgeRequest(query_id=qid, prompt=prompt, gold=gold, answers=answers))
        fresh: list[str] = []

        def done(k: int, judgement: Judgement) -> None:
            key = keys[k]
            results[key] = judgement
            fresh.append(json.dumps({"k": key, **judgement.to_record()}, ensure_ascii=False))
            if len(fresh) >= 64:
                locked_append(path, fresh)
                fresh.clear()
            if progress:
                progress(1)

        try:
            backend.judge(reqs, done)
        finally:
            if fresh:
                locked_append(path, fresh)
            backend.close()
        stats.judged = len(keys)  # identical answers of one query are one judgement
        s = backend.stats
        stats.repairs, stats.fallbacks, stats.calls, stats.seconds = s.repairs, s.fallbacks, s.calls, s.seconds
        stats.over_context, stats.context = s.over_context, s.context

    base_scores: list[dict[str, int]] = []
    cand_scores: list[dict[str, int]] = []
    base_reason: list[str] = []
    cand_reason: list[str] = []
    for i, items in enumerate(needs):
        if pairwise:
            assert swapped is not None
            j = results[items[0][0]]
            c_pos, b_pos = (0, 1) if swapped[i] else (1, 0)
            base_scores.append(j.scores[b_pos])
            cand_scores.append(j.scores[c_pos])
            base_reason.append(j.reasoning)
            cand_reason.append(j.reasoning)
        else:
            jb, jc = results[items[0][0]], results[items[1][0]]
            base_scores.append(jb.scores[0])
            cand_scores.append(jc.scores[0])
            base_reason.append(jb.reasoning)
            cand_reason.append(jc.reasoning)
    return JudgeOutcome(
        criteria=settings.criteria, pairwise=pairwise, judge=label, backend=kind,
        baseline=base_scores, candidate=cand_scores, baseline_reasoning=base_reason,
        candidate_reasoning=cand_reason, swapped=swapped, stats=stats,
    )


@dataclass(frozen=True)
class _Identity:
    identity: str
    label: str
    kind: str
    fields: dict[str, Any]

    def key_fields(self) -> dict[str, Any]:
        return self.fields


def _identity_without_loading(settings: JudgeSettings, factory: Callable[[], Any]) -> _Identity | None:
    """The judge's cache identity without loading a model (the weights are hashed, not loaded)."""
    if settings.url is not None:
        endpoint = chat_endpoint(settings.url)
        ident = f"url:{endpoint} model:{settings.name}"
        return _Identity(ident, f"{settings.name} at {public_url(endpoint)}", "url", {"judge": ident})
    probe = getattr(factory, "identity", None)
    return probe() if callable(probe) else None


class LocalJudgeFactory:
    """Builds a :class:`LocalJudge` on demand; knows its cache identity before loading it."""

    def __init__(self, settings: JudgeSettings, gen: Any, *, allow_pickle: bool = False) -> None:
        self.settings, self.gen, self.allow_pickle = settings, gen, allow_pickle
        self._identity: _Identity | None = None

    def identity(self) -> _Identity:
        from adaptergate.backends.adapters import inspect_base

        assert self.settings.model is not None
        if self._identity is not None:
            return self._identity
        try:
            info = inspect_base(self.settings.model, allow_pickle=self.allow_pickle)
        except InvalidInputError as exc:
            raise InvalidInputError(f"--judge-model: {exc.message}", details=exc.details) from None
        ident = f"model:{info.sha256}"
        self._identity = _Identity(
            ident, f"{Path(self.settings.model).name} (sha256 {info.sha256[:12]})", "model",
            {"judge": ident, "dtype": self.gen.dtype, "quantize": self.gen.quantize,
             "reasoning_tokens": self.settings.reasoning_tokens},
        )
        return self._identity

    def __call__(self) -> LocalJudge:
        return LocalJudge(self.settings, self.gen, self.identity())
