"""Deterministic synthetic holdout sets for the benchmarks.

Each query is a JSON object::

    {"question_id": "q0000042",
     "question": "Can you help with this urgent refund request on order 48213?",
     "gold": "Route to the refund request team; reference 48213.",
     "slices": ["intent=refund_request", "lang=de", "difficulty=hard"],
     "u": 0.7193...}

Two variants:

* ``std``: 50 distinct slice tags over four keys: ``intent=`` x 25,
  ``lang=`` x 5, ``difficulty=`` x 4, ``channel=`` x 16. Every query has an
  intent and a lang tag and, half of the time, a difficulty or a channel tag,
  so it sits in 2 or 3 overlapping slices.
* ``tags5050``: exactly 5,050 distinct tags: ``topic=<word>`` x 5,020 (six
  random letters, so no two topics look like near-duplicates), plus the 25
  intents and 5 langs. Every query has one tag of each; from N = 5,020 on,
  every topic occurs.

Each variant is written in two formats:

* raw: one query object per line (what ``holdout import --from-jsonl`` reads,
  and what the new package also reads as a holdout);
* wrapped: adaptergate 0.5.4's holdout file, one
  ``{"query_id", "tenant_id", "payload": {...query...}, "added_at",
  "accepted_by_adapter"}`` per line.

Generation is sequential from one seeded ``random.Random``, so the first N
queries of a larger set equal the smaller set. Files are cached under
``bench/_work/data`` (regenerated only when missing).

Usage::

    python bench/synth.py --n 10000 [--variant std|tags5050] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

GENERATOR_VERSION = 1
SEED = 20240611
TENANT = "bench"
ADDED_AT = "2025-01-01T00:00:00+00:00"
ACCEPTED_BY = "base_v1"

INTENTS = [
    "refund_request", "billing_dispute", "order_status", "cancel_subscription",
    "password_reset", "shipping_delay", "address_change", "invoice_copy",
    "payment_failed", "account_locked", "upgrade_plan", "downgrade_plan",
    "warranty_claim", "product_return", "missing_delivery", "coupon_problem",
    "gift_card", "data_export", "privacy_request", "tax_question",
    "technical_support", "feature_request", "bug_report", "store_hours",
    "loyalty_points",
]
LANGS = ["en", "de", "fr", "ja", "pt"]
DIFFICULTIES = ["easy", "medium", "hard", "expert"]
CHANNELS = [
    "email", "chat", "phone", "sms", "web_form", "mobile_app", "twitter", "facebook",
    "whatsapp", "in_store", "kiosk", "voice_assistant", "partner_portal", "fax",
    "letter", "community_forum",
]
DRIVER_SLICE = "intent=refund_request"  # the slice the candidate breaks (see scorer_bench)

N_TOPICS_5050 = 5050 - len(INTENTS) - len(LANGS)  # 5,020

_VERBS = ["check", "update", "fix", "track", "cancel", "change", "confirm", "review",
          "reset", "transfer", "renew", "verify", "close", "reopen", "escalate"]
_NOUNS = ["order", "package", "account", "invoice", "subscription", "card", "device",
          "profile", "receipt", "voucher", "plan", "shipment", "ticket", "payment"]
_ADJS = ["urgent", "quick", "recurring", "strange", "second", "small", "late",
         "duplicate", "partial", "pending", "old", "new"]
_PROBLEMS = ["arrived broken", "never showed up", "was charged twice", "stopped working",
             "shows the wrong total", "got lost", "was declined", "keeps failing",
             "is missing an item", "came without a label"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
         "last week", "yesterday", "this morning"]
_TEMPLATES = [
    "How do I {verb} the {noun} for my {phrase}?",
    "Can you help with this {adj} {phrase} on order {num}?",
    "My {noun} {problem} and I want to ask about a {phrase}.",
    "Is there a way to {verb} my {phrase} before {day}?",
    "Hi, {phrase} question: the {noun} I got on {day} {problem}.",
    "I need someone to {verb} the {adj} {noun}, it is about {phrase} {num}.",
]


def topic_words(n: int = N_TOPICS_5050, seed: int = SEED) -> list[str]:
    """``n`` distinct six-letter words, deterministic."""
    rng = random.Random(seed ^ 0x5050)
    letters = "abcdefghijklmnopqrstuvwxyz"
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        w = "".join(rng.choice(letters) for _ in range(6))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def all_tags(variant: str) -> list[str]:
    base = [f"intent={i}" for i in INTENTS] + [f"lang={lang}" for lang in LANGS]
    if variant == "std":
        return base + [f"difficulty={d}" for d in DIFFICULTIES] + [f"channel={c}" for c in CHANNELS]
    if variant == "tags5050":
        return base + [f"topic={w}" for w in topic_words()]
    raise ValueError(f"unknown variant {variant!r}")


def iter_queries(n: int, variant: str = "std", seed: int = SEED):
    """Yield ``n`` query dicts, deterministically."""
    rng = random.Random(seed)
    topics = topic_words() if variant == "tags5050" else None
    if variant not in ("std", "tags5050"):
        raise ValueError(f"unknown variant {variant!r}")
    for i in range(n):
        intent = INTENTS[rng.randrange(len(INTENTS))]
        lang = LANGS[rng.randrange(len(LANGS))]
        slices = [f"intent={intent}", f"lang={lang}"]
        if variant == "std":
            third = rng.randrange(4)  # 0,1: none; 2: difficulty; 3: channel
            if third == 2:
                slices.append(f"difficulty={DIFFICULTIES[rng.randrange(len(DIFFICULTIES))]}")
            elif third == 3:
                slices.append(f"channel={CHANNELS[rng.randrange(len(CHANNELS))]}")
        else:
            # 2333 is coprime with 5,020: every block of 5,020 queries covers every topic.
            slices.insert(0, f"topic={topics[(i * 2333) % len(topics)]}")
        num = rng.randrange(10000, 100000)
        phrase = intent.replace("_", " ")
        question = _TEMPLATES[rng.randrange(len(_TEMPLATES))].format(
            verb=_VERBS[rng.randrange(len(_VERBS))],
            noun=_NOUNS[rng.randrange(len(_NOUNS))],
            adj=_ADJS[rng.randrange(len(_ADJS))],
            problem=_PROBLEMS[rng.randrange(len(_PROBLEMS))],
            day=_DAYS[rng.randrange(len(_DAYS))],
            phrase=phrase,
            num=num,
        )
        yield {
            "question_id": f"q{i:07d}",
            "question": question,
            "gold": f"Route to the {phrase} team; reference {num}.",
            "slices": slices,
            "u": rng.random(),
        }


def wrap(query: dict, tenant: str = TENANT) -> dict:
    """The 0.5.4 holdout record for ``query``."""
    return {
        "query_id": str(query["question_id"]),
        "tenant_id": tenant,
        "payload": query,
        "added_at": ADDED_AT,
        "accepted_by_adapter": ACCEPTED_BY,
    }


def default_data_dir() -> Path:
    return Path(__file__).resolve().parent / "_work" / "data"


def dataset_paths(n: int, variant: str = "std", out_dir: Path | None = None) -> tuple[Path, Path]:
    d = Path(out_dir) if out_dir else default_data_dir()
    stem = f"{variant}_n{n}_s{SEED}_g{GENERATOR_VERSION}"
    return d / f"{stem}.raw.jsonl", d / f"{stem}.wrapped.jsonl"


def ensure_dataset(
    n: int, variant: str = "std", out_dir: Path | None = None, *, verbose: bool = True
) -> tuple[Path, Path]:
    """Return (raw_path, wrapped_path), generating both files if missing."""
    raw_path, wrapped_path = dataset_paths(n, variant, out_dir)
    if raw_path.exists() and wrapped_path.exists():
        return raw_path, wrapped_path
    raw_path.parent.mkdir(parents=True, exist_ok=True)
    if verbose:
        print(f"[synth] generating {variant} N={n:,} -> {raw_path.parent}", flush=True)
    tmp_raw = raw_path.with_name(raw_path.name + ".tmp")
    tmp_wrapped = wrapped_path.with_name(wrapped_path.name + ".tmp")
    dumps = json.dumps
    with open(tmp_raw, "w", encoding="utf-8") as fr, open(tmp_wrapped, "w", encoding="utf-8") as fw:
        buf_r: list[str] = []
        buf_w: list[str] = []
        for q in iter_queries(n, variant):
            buf_r.append(dumps(q))
            buf_w.append(dumps(wrap(q)))
            if len(buf_r) >= 10000:
                fr.write("\n".join(buf_r) + "\n")
                fw.write("\n".join(buf_w) + "\n")
                buf_r.clear()
                buf_w.clear()
        if buf_r:
            fr.write("\n".join(buf_r) + "\n")
            fw.write("\n".join(buf_w) + "\n")
    os.replace(tmp_raw, raw_path)
    os.replace(tmp_wrapped, wrapped_path)
    return raw_path, wrapped_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, required=True, help="number of queries")
    ap.add_argument("--variant", choices=["std", "tags5050"], default="std")
    ap.add_argument("--out-dir", type=Path, default=None, help="default: bench/_work/data")
    ap.add_argument("--stats", action="store_true", help="print slice statistics")
    args = ap.parse_args(argv)
    raw, wrapped = ensure_dataset(args.n, args.variant, args.out_dir)
    print(f"raw:     {raw}")
    print(f"wrapped: {wrapped}")
    if args.stats:
        counts: dict[str, int] = {}
        per_query: dict[int, int] = {}
        with open(raw, encoding="utf-8") as fh:
            for line in fh:
                q = json.loads(line)
                per_query[len(q["slices"])] = per_query.get(len(q["slices"]), 0) + 1
                for t in q["slices"]:
                    counts[t] = counts.get(t, 0) + 1
        print(f"distinct tags: {len(counts):,}  (expected {len(all_tags(args.variant)):,})")
        print(f"slices per query: {dict(sorted(per_query.items()))}")
        sizes = sorted(counts.values())
        print(f"slice sizes: min {sizes[0]:,}  median {sizes[len(sizes) // 2]:,}  max {sizes[-1]:,}")
        print(f"driver slice {DRIVER_SLICE}: {counts.get(DRIVER_SLICE, 0):,} queries")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
