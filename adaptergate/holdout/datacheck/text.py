"""A record's text: what lengths, duplicates, diversity and contamination are measured on.

:func:`record_text` finds the text of the usual JSONL shapes (chat messages,
ShareGPT, Alpaca, prompt/answer; a 0.5.4-wrapped holdout line is unwrapped);
:func:`normalise` is the normal form the ``normalised`` and ``near`` levels
compare.
"""

from __future__ import annotations

import functools
import json
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "ANSWER_KEYS",
    "ID_KEYS",
    "PROMPT_KEYS",
    "USER_ROLES",
    "Rows",
    "as_text",
    "first_of",
    "join_texts",
    "normalise",
    "record_parts",
    "record_text",
    "unwrap",
]


PROMPT_KEYS = ("prompt", "question", "text", "query")
ANSWER_KEYS = ("completion", "gold", "expected_output", "answer", "response")
USER_ROLES = frozenset({"user", "human"})
ID_KEYS = ("id", "question_id", "query_id")


def as_text(value: Any) -> str:
    """A field's text: strings as they are, content-part lists joined, other JSON compact."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for item in value:
            if isinstance(item, str):
                parts.append(item)
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                parts.append(item["text"])  # OpenAI-style content parts
            elif item is not None:
                parts.append(as_text(item))
        return "\n".join(p for p in parts if p)
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _text_of(value: Any) -> str:
    return value if type(value) is str else as_text(value)


def join_texts(*parts: str) -> str:
    return "\n".join(p for p in parts if p)


def first_of(obj: dict[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value
    return None


def unwrap(obj: dict[str, Any]) -> dict[str, Any]:
    """adaptergate 0.5.4 wrote holdout lines as {"query_id", "tenant_id", "payload", ...}."""
    payload = obj.get("payload")
    if isinstance(payload, dict) and "query_id" in obj and "tenant_id" in obj:
        return payload
    return obj


def _turns(messages: Any, text_key: str, role_key: str) -> tuple[str, list[str]] | None:
    if not isinstance(messages, list):
        return None
    every, users = [], []
    for m in messages:
        if type(m) is not dict:
            continue
        text = m.get(text_key)
        if type(text) is not str:
            text = as_text(text)
        if not text:
            continue
        every.append(text)
        role = m.get(role_key)
        if role in USER_ROLES or (type(role) is str and role.lower() in USER_ROLES):
            users.append(text)
    return "\n".join(every), users


def record_parts(obj: Any) -> tuple[str, str, tuple[str, ...]]:
    """``(text, prompt side, user turns)`` of one record; see :func:`record_text`."""
    if not isinstance(obj, dict):
        return "", "", ()
    if "payload" in obj:
        obj = unwrap(obj)
    for list_key, text_key, role_key in (("messages", "content", "role"),
                                         ("conversations", "value", "from")):
        if list_key in obj:
            got = _turns(obj[list_key], text_key, role_key)
            if got is not None:
                text, users = got
                # the turns matter apart from the prompt side only when there are several
                return text, "\n".join(users), tuple(users) if len(users) > 1 else ()
    if "instruction" in obj or "input" in obj or "output" in obj:
        prompt = join_texts(_text_of(obj.get("instruction")), _text_of(obj.get("input")))
        return join_texts(prompt, _text_of(obj.get("output"))), prompt, ()
    prompt = _text_of(first_of(obj, PROMPT_KEYS))
    return join_texts(prompt, _text_of(first_of(obj, ANSWER_KEYS))), prompt, ()


def record_text(obj: Any) -> str:
    """The text of one record, for lengths, duplicates, diversity and contamination.

    The first shape that matches wins (a 0.5.4-wrapped holdout line is unwrapped):

    1. ``messages``: a list of ``{"role", "content"}`` (chat format): every
       message's content (a string, or a list of ``{"type": "text", "text"}``
       parts), joined with newlines; ``conversations`` with ``{"from", "value"}``
       (ShareGPT) likewise;
    2. ``instruction`` / ``input`` / ``output`` (Alpaca), any of them present:
       the three joined with newlines;
    3. otherwise the prompt (``prompt``, ``question``, ``text``, ``query``; the
       first present) and the answer (``completion``, ``gold``,
       ``expected_output``, ``answer``, ``response``; the first present) joined
       with a newline. A non-string field counts as its compact JSON.

    A record with none of these has no text (``""``), counted as ``no_text``.
    """
    return record_parts(obj)[0]


@functools.lru_cache(maxsize=1)
def _strip_table() -> dict[int, Any]:
    """Punctuation (P*) and format (Cf: zero-width, bidi) removed; other controls -> space."""
    table: dict[int, Any] = {}
    for cp in range(sys.maxunicode + 1):
        cat = unicodedata.category(chr(cp))
        if cat[0] == "P" or cat == "Cf":
            table[cp] = None
        elif cat == "Cc":
            table[cp] = " "
    return table


@functools.lru_cache(maxsize=1)
def _ascii_tables() -> tuple[bytes, bytes]:
    """The same mapping as :func:`_strip_table` for ASCII, as ``bytes.translate`` arguments."""
    to_space = bytearray(range(256))
    delete = bytearray()
    for cp in range(128):
        cat = unicodedata.category(chr(cp))
        if cat[0] == "P" or cat == "Cf":
            delete.append(cp)
        elif cat == "Cc":
            to_space[cp] = ord(" ")
    return bytes(to_space), bytes(delete)


def _normalise_once(text: str) -> str:
    if text.isascii():  # NFKC is the identity and casefold is lower() on ASCII
        to_space, delete = _ascii_tables()
        return b" ".join(text.encode("ascii").lower().translate(to_space, delete).split()).decode("ascii")
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(text.translate(_strip_table()).split())


def normalise(text: str) -> str:
    """NFKC, casefold, strip punctuation, collapse whitespace; idempotent.

    ``"Refund my order 123!"`` and ``"refund my  ORDER 123"`` both become
    ``"refund my order 123"``. Removing a character can make the rest
    composable again, so the step is repeated until nothing changes.
    """
    out = _normalise_once(text)
    if out.isascii():
        return out
    for _ in range(8):
        again = _normalise_once(out)
        if again == out:
            break
        out = again
    return out


@dataclass
class Rows:
    lines: list[int] = field(default_factory=list)
    full: list[str] = field(default_factory=list)
    prompt: list[str] = field(default_factory=list)
    turns: list[tuple[str, ...]] = field(default_factory=list)
