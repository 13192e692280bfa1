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

Modules, one noun each:

* :mod:`~adaptergate.metrics.judge.criteria` — the criteria, their validation, the weighted score;
* :mod:`~adaptergate.metrics.judge.settings` — :class:`JudgeSettings` (the ``--judge-*`` options);
* :mod:`~adaptergate.metrics.judge.replies` — the output contract and the judgement it yields;
* :mod:`~adaptergate.metrics.judge.prompts` — the messages sent to the judge;
* :mod:`~adaptergate.metrics.judge.request` — one item to judge, and a backend's statistics;
* :mod:`~adaptergate.metrics.judge.url` — the OpenAI-compatible server backend;
* :mod:`~adaptergate.metrics.judge.local` — the local model backend (constrained decoding);
* :mod:`~adaptergate.metrics.judge.cache` — the judgement cache;
* :mod:`~adaptergate.metrics.judge.run` — :func:`judge_answers`, a whole run.
"""

from adaptergate.metrics.judge.cache import CACHE_VERSION
from adaptergate.metrics.judge.criteria import (
    DEFAULT_CRITERIA,
    MAX_CRITERIA,
    MAX_RUBRIC_CHARS,
    SCORE_MAX,
    SCORE_MIN,
    Criterion,
    check_criteria,
    criteria_hash,
    load_criteria,
    pairwise_swapped,
    weighted_score,
)
from adaptergate.metrics.judge.local import LocalJudge, LocalJudgeFactory
from adaptergate.metrics.judge.prompts import (
    MAX_ANSWER_CHARS,
    PROMPT_VERSION,
    build_messages,
    repair_message,
)
from adaptergate.metrics.judge.replies import (
    MAX_REASONING_CHARS,
    JudgeOutputError,
    Judgement,
    output_schema,
    parse_judgement,
    response_format,
)
from adaptergate.metrics.judge.request import JudgeRequest, JudgeStats
from adaptergate.metrics.judge.run import JudgeOutcome, backend_factory, judge_answers
from adaptergate.metrics.judge.settings import (
    DEFAULT_REASONING_TOKENS,
    DEFAULT_TIMEOUT_S,
    JUDGE_METRIC,
    JudgeSettings,
)
from adaptergate.metrics.judge.url import UrlJudge, chat_endpoint
from adaptergate.trust import public_url

__all__ = [
    "CACHE_VERSION",
    "Criterion",
    "DEFAULT_CRITERIA",
    "DEFAULT_REASONING_TOKENS",
    "DEFAULT_TIMEOUT_S",
    "JUDGE_METRIC",
    "JudgeOutcome",
    "JudgeOutputError",
    "JudgeRequest",
    "JudgeSettings",
    "JudgeStats",
    "Judgement",
    "LocalJudge",
    "LocalJudgeFactory",
    "MAX_ANSWER_CHARS",
    "MAX_CRITERIA",
    "MAX_REASONING_CHARS",
    "MAX_RUBRIC_CHARS",
    "PROMPT_VERSION",
    "SCORE_MAX",
    "SCORE_MIN",
    "UrlJudge",
    "backend_factory",
    "build_messages",
    "chat_endpoint",
    "check_criteria",
    "criteria_hash",
    "judge_answers",
    "load_criteria",
    "output_schema",
    "pairwise_swapped",
    "parse_judgement",
    "public_url",
    "repair_message",
    "response_format",
    "weighted_score",
]
