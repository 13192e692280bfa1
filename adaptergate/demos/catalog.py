"""Bundled demos that need no model download, no GPU and no network.

``adaptergate demo silent`` is adaptergate 0.5.4's headline case: 300 queries,
12 of them in a small, business-critical slice that the candidate breaks.
Aggregate-only gating accepts (the mean barely moves); ``--slice-epsilon``
rejects and names the slice.

``adaptergate demo classifier`` trains two small intent classifiers here, with
numpy (multinomial naive Bayes on word 1- and 2-grams), as stand-ins for two
adapter versions; the candidate learnt from a feedback batch that relabelled
one kind of refund request. The gate rejects and names ``intent=refund``.

``adaptergate demo sql`` gates a generative scorer: two "adapters" turn
questions into SQL, scored against gold SQL by sqlglot AST equality (or
normalised string equality without sqlglot). The candidate writes ``= NULL``
for ``IS NULL``; the gate rejects and names ``intent=null_check``.

The scorers of the last two are importable, so the printed ``adaptergate gate``
command line can be rerun as is: ``adaptergate.demos.catalog:score_intent`` and
``adaptergate.demos.catalog:score_sql``.
"""

from __future__ import annotations

import json
import random
import re
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console

from adaptergate.scoring.scorers import Scorer

_INTENTS = ["order_status", "shipping_times", "password_reset", "invoice_copy", "store_hours"]
_CRITICAL = "intent=gdpr_erasure"


def _holdout_rows() -> list[dict]:
    rows = []
    for i in range(288):
        intent = _INTENTS[i % len(_INTENTS)]
        rows.append({
            "id": f"{intent}_{i:03d}",
            "prompt": f"Customer asks about {intent.replace('_', ' ')} (ticket {i})",
            "slices": [f"intent={intent}", f"lang={'en' if i % 3 else 'es'}"],
        })
    for i in range(12):
        rows.append({
            "id": f"gdpr_{i}",
            "prompt": f"Please delete all my personal data under GDPR article 17 (request {i})",
            "slices": [_CRITICAL, "lang=en"],
        })
    return rows


def _score(adapter_id: str, query: dict) -> float:
    critical = _CRITICAL in query.get("slices", [])
    if adapter_id == "candidate_v2":
        return 0.0 if critical else 1.0
    return 1.0


def run_silent(console: Console) -> None:
    """Gate the same data twice: aggregate only (--slice-epsilon off), then with --slice-epsilon 0.10
    (the stat rule's default)."""
    from adaptergate.pipeline.gate import GateRequest, run_gate
    from adaptergate.models import GateConfig
    from adaptergate.report import print_human

    workdir = Path(tempfile.mkdtemp(prefix="adaptergate-silent-"))
    holdout = workdir / "holdout.jsonl"
    holdout.write_text("".join(json.dumps(r) + "\n" for r in _holdout_rows()), encoding="utf-8")
    scorer = Scorer(spec="demo:score", single=_score)
    err = Console(stderr=True)
    for title, slice_eps in (("aggregate only, --slice-epsilon off (like a mean-score eval)", None),
                             ("with --slice-epsilon 0.10 (the default)", 0.10)):
        console.rule(title)
        decision = run_gate(
            GateRequest(
                tenant="demo", candidate="candidate_v2", baseline="production_v1",
                holdout_path=holdout, scorer_spec=scorer.spec,
                config=GateConfig(epsilon=0.05, slice_epsilon=slice_eps),
            ),
            scorer=scorer,
        )
        print_human(decision, console=console, err_console=err)
        console.print()
    console.print(
        "Same data, same adapters: the aggregate moved by less than 0.05, one 12-query slice went"
        " 1.000 → 0.000. Only the slice rule stops it. (With 5 such queries the evidence would not"
        " be enough after adjusting for 8 slices, and the report would say how many are needed.)",
        markup=False, highlight=False,
    )


# ===================================================================== shared


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False)


def _gate_and_print(
    console: Console, *, tenant: str, candidate: str, baseline: str, holdout: Path, scorer: Scorer,
    slice_epsilon: float | None = 0.10,
) -> int:
    """Run the real gate on ``holdout``, print the human report; return the gate's exit code."""
    from adaptergate.pipeline.gate import GateRequest, run_gate
    from adaptergate.models import GateConfig
    from adaptergate.report import print_human

    # the printed command reproduces the gate: without a margin, slices are gated at 0.10 by default
    flags = f" --slice-epsilon {slice_epsilon:g}" if slice_epsilon is not None else " --slice-epsilon off"
    _say(
        console,
        f"$ adaptergate gate --tenant {tenant} --candidate {candidate} --baseline {baseline}"
        f" --holdout {holdout} --scorer {scorer.spec}{flags}\n",
    )
    decision = run_gate(
        GateRequest(
            tenant=tenant, candidate=candidate, baseline=baseline, holdout_path=holdout,
            scorer_spec=scorer.spec, config=GateConfig(slice_epsilon=slice_epsilon),
        ),
        scorer=scorer,
    )
    print_human(decision, console=console, err_console=Console(stderr=True, soft_wrap=True))
    code = 0 if decision.accepted else 1
    _say(console, f"\n(the gate exited {code}: that is what CI sees; the demo itself succeeded)")
    return code


# ================================================================= classifier
#
# A multi-intent support dataset in English and Spanish, generated from
# templates with a fixed seed. Refund requests come in two kinds: with an
# order number, and without one (lost receipt, gift, ...). The candidate's
# training labels come from a "feedback batch" that routed every refund
# request without an order number to order_status (an agent would look the
# order up first); the model learns that and refuses the refund.

BASELINE_ADAPTER = "support_v1"
CANDIDATE_ADAPTER = "support_v2"
CONTAMINATED_INTENT = "refund"
_CONTAMINATED_AS = "order_status"
_SEED = 20240517

# intent -> variant -> lang -> templates. The last template of each list is
# never used for training: the held-out set has phrasings the models never saw.
_TEMPLATES: dict[str, dict[str, dict[str, list[str]]]] = {
    "refund": {
        "with_ref": {
            "en": [
                "I want a refund for order {num}",
                "Please refund order {num}, the {item} arrived broken",
                "Can I get my money back for order {num}?",
                "Refund the {item} from order {num} please",
                "The {item} in order {num} was damaged and I want a refund",
                "Order {num} came with a broken {item}, please refund it",
            ],
            "es": [
                "Quiero un reembolso del pedido {num}",
                "Reembolsen el pedido {num}, la {item} llegó rota",
                "¿Me devuelven el dinero del pedido {num}?",
                "Quiero que me reembolsen la {item} del pedido {num}",
                "La {item} del pedido {num} llegó dañada, quiero un reembolso",
                "El pedido {num} trajo una {item} rota, quiero un reembolso",
            ],
        },
        "no_ref": {
            "en": [
                "I want a refund for the {item} but I lost the receipt",
                "Please refund the {item}, I don't have the order number",
                "Can I get my money back for the {item}? I can't find my order number",
                "Refund the {item} please, it was a gift so I have no receipt",
                "The {item} broke and I want a refund, the receipt is gone",
                "I need a refund for a {item} but I have no order number or receipt",
            ],
            "es": [
                "Quiero un reembolso de la {item} pero perdí el recibo",
                "Reembolsen la {item} por favor, no tengo el número de pedido",
                "¿Me devuelven el dinero de la {item}? No encuentro el número de pedido",
                "Quiero el reembolso de la {item}, fue un regalo y no tengo recibo",
                "La {item} se rompió y quiero un reembolso, perdí el recibo",
                "Necesito un reembolso de una {item} pero no tengo recibo ni número de pedido",
            ],
        },
    },
    "order_status": {
        "": {
            "en": [
                "Where is order {num}?",
                "Has order {num} shipped yet?",
                "When will my {item} arrive? It is order {num}",
                "Track order {num} for me please",
                "My {item} from order {num} has not arrived",
                "Is order {num} on its way yet? I want to track it",
            ],
            "es": [
                "¿Dónde está el pedido {num}?",
                "¿Ya enviaron el pedido {num}?",
                "¿Cuándo llega mi {item}? Es el pedido {num}",
                "Quiero rastrear el pedido {num}",
                "Mi {item} del pedido {num} no ha llegado",
                "¿El pedido {num} ya está en camino? Quiero rastrearlo",
            ],
        },
    },
    "password_reset": {
        "": {
            "en": [
                "I can't log in, please reset my password",
                "The password reset email never arrived",
                "My account is locked after too many login attempts",
                "How do I change my password? I can't sign in",
                "Reset my password, the login page says it is wrong",
                "I am locked out of my account and need a new password",
            ],
            "es": [
                "No puedo iniciar sesión, restablezcan mi contraseña",
                "Nunca llegó el correo para cambiar la contraseña",
                "Mi cuenta está bloqueada por demasiados intentos",
                "¿Cómo cambio mi contraseña? No puedo entrar",
                "Restablezcan mi contraseña, dice que es incorrecta",
                "Estoy bloqueado fuera de mi cuenta y necesito una contraseña nueva",
            ],
        },
    },
    "cancel_subscription": {
        "": {
            "en": [
                "Cancel my {plan} subscription",
                "I want to stop my {plan} plan",
                "Please do not renew my {plan} membership",
                "How do I end the {plan} subscription?",
                "Stop charging me for the {plan} plan, I want to cancel",
                "I would like to cancel the {plan} membership before it renews",
            ],
            "es": [
                "Cancelen mi suscripción {plan}",
                "Quiero dar de baja mi plan {plan}",
                "No renueven mi membresía {plan}, por favor",
                "¿Cómo termino la suscripción {plan}?",
                "Dejen de cobrarme el plan {plan}, quiero cancelar",
                "Quisiera cancelar la membresía {plan} antes de que se renueve",
            ],
        },
    },
    "change_address": {
        "": {
            "en": [
                "Change the delivery address for order {num}",
                "I moved, please update my shipping address to {city}",
                "Ship order {num} to my new address in {city}",
                "Can I change where order {num} is delivered?",
                "Update my address, I live in {city} now",
                "Please send order {num} to a different address in {city}",
            ],
            "es": [
                "Cambien la dirección de entrega del pedido {num}",
                "Me mudé, actualicen mi dirección de envío a {city}",
                "Envíen el pedido {num} a mi nueva dirección en {city}",
                "¿Puedo cambiar dónde se entrega el pedido {num}?",
                "Actualicen mi dirección, ahora vivo en {city}",
                "Manden el pedido {num} a otra dirección en {city}",
            ],
        },
    },
}
_FILLERS = {
    "item": {
        "en": ["headphones", "blender", "jacket", "lamp", "backpack", "kettle", "monitor", "sneakers"],
        "es": ["licuadora", "chaqueta", "lámpara", "mochila", "tetera", "cafetera", "impresora", "silla"],
    },
    "plan": {"en": ["Basic", "Plus", "Premium", "Family"], "es": ["Básico", "Plus", "Premium", "Familiar"]},
    "city": {"en": ["Austin", "Denver", "Boston", "Seattle"], "es": ["Madrid", "Lima", "Quito", "Bogotá"]},
}
_OPENERS = {"en": ["", "Hi, ", "Hello, ", "Quick question: "], "es": ["", "Hola, ", "Buenas, ", "Una consulta: "]}
_CLOSERS = {"en": ["", " Thanks.", " Thank you!", " Please help."], "es": ["", " Gracias.", " ¡Gracias!", " Ayuda, por favor."]}
_TRAIN_PER_GROUP = {"": 36, "with_ref": 24, "no_ref": 12}  # per (intent, variant, lang)
_HOLDOUT_PER_GROUP = 12


def _fill(template: str, lang: str, rng: random.Random) -> str:
    values = {k: rng.choice(v[lang]) for k, v in _FILLERS.items()}
    values["num"] = str(rng.randrange(10_000, 100_000))
    body = template.format(**values)
    opener = rng.choice(_OPENERS[lang])
    if opener and not body.startswith("I "):
        body = body[0].lower() + body[1:]
    closer = rng.choice(_CLOSERS[lang])
    if closer and body[-1] not in ".?!":
        body += "."
    text = opener + body + closer
    return text[0].upper() + text[1:]


def build_support_data(seed: int = _SEED) -> tuple[list[dict], list[dict]]:
    """The training examples and the held-out queries, deterministic for a seed.

    Training rows are ``{"text", "intent", "variant", "lang"}``; held-out rows
    are holdout lines (``id``, ``prompt``, ``gold``, ``slices``).
    """
    rng = random.Random(seed)
    train: list[dict] = []
    holdout: list[dict] = []
    seen: set[str] = set()
    for intent, variants in _TEMPLATES.items():
        for variant, by_lang in variants.items():
            for lang, templates in by_lang.items():
                for i in range(_TRAIN_PER_GROUP[variant]):
                    text = _fill(templates[i % (len(templates) - 1)], lang, rng)
                    seen.add(text)
                    train.append({"text": text, "intent": intent, "variant": variant, "lang": lang})
                n_hold = _HOLDOUT_PER_GROUP // len(variants)
                made = attempts = 0
                while made < n_hold:
                    attempts += 1
                    if attempts > 1000:  # pragma: no cover - a template set too small to sample
                        raise RuntimeError(f"cannot draw {n_hold} new held-out queries for {intent}/{lang}")
                    # Half the held-out phrasings use the template never trained on.
                    t = templates[-1] if made % 2 == 0 else templates[made % (len(templates) - 1)]
                    text = _fill(t, lang, rng)
                    if text in seen:
                        continue
                    seen.add(text)
                    qid = f"{intent}_{lang}_{sum(q['id'].startswith(f'{intent}_{lang}_') for q in holdout):02d}"
                    holdout.append({
                        "id": qid, "prompt": text, "gold": intent,
                        "slices": [f"intent={intent}", f"lang={lang}"],
                    })
                    made += 1
    return train, holdout


def contaminated_labels(train: list[dict]) -> list[str]:
    """The candidate's labels: refund requests without an order number become order_status."""
    return [
        _CONTAMINATED_AS if r["intent"] == CONTAMINATED_INTENT and r["variant"] == "no_ref" else r["intent"]
        for r in train
    ]


_WORD_RE = re.compile(r"\w+")


def _features(text: str) -> list[str]:
    """Lower-cased word unigrams and bigrams."""
    toks = _WORD_RE.findall(text.lower())
    return toks + [f"{a} {b}" for a, b in zip(toks, toks[1:])]


class NaiveBayesIntents:
    """Multinomial naive Bayes over word 1-2-grams, in numpy. Deterministic."""

    def __init__(self, alpha: float = 0.5) -> None:
        self.alpha = alpha
        self.labels: list[str] = []
        self.vocab: dict[str, int] = {}
        self.log_prior = np.zeros(0)
        self.log_lik = np.zeros((0, 0))

    def _counts(self, texts: list[str]) -> np.ndarray:
        x = np.zeros((len(texts), len(self.vocab)), dtype=np.float64)
        for i, text in enumerate(texts):
            cols = [self.vocab[f] for f in _features(text) if f in self.vocab]
            np.add.at(x[i], cols, 1.0)
        return x

    def fit(self, texts: list[str], labels: list[str]) -> "NaiveBayesIntents":
        self.labels = sorted(set(labels))
        self.vocab = {f: j for j, f in enumerate(sorted({f for t in texts for f in _features(t)}))}
        x = self._counts(texts)
        y = np.array([self.labels.index(lab) for lab in labels])
        onehot = np.eye(len(self.labels))[y]
        class_counts = onehot.T @ x + self.alpha
        self.log_lik = np.log(class_counts / class_counts.sum(axis=1, keepdims=True))
        self.log_prior = np.log(onehot.sum(axis=0) / len(labels))
        return self

    def predict(self, texts: list[str]) -> list[str]:
        scores = self._counts(texts) @ self.log_lik.T + self.log_prior
        return [self.labels[j] for j in np.argmax(scores, axis=1)]


_SUPPORT_MODELS: dict[str, NaiveBayesIntents] = {}


def support_adapters() -> dict[str, NaiveBayesIntents]:
    """Train (once per process) the clean baseline and the contaminated candidate."""
    if not _SUPPORT_MODELS:
        train, _ = build_support_data()
        texts = [r["text"] for r in train]
        _SUPPORT_MODELS[BASELINE_ADAPTER] = NaiveBayesIntents().fit(texts, [r["intent"] for r in train])
        _SUPPORT_MODELS[CANDIDATE_ADAPTER] = NaiveBayesIntents().fit(texts, contaminated_labels(train))
    return _SUPPORT_MODELS


def _support_model(adapter_id: str) -> NaiveBayesIntents:
    models = support_adapters()
    if adapter_id not in models:
        raise ValueError(f"unknown adapter {adapter_id!r}; this demo has {', '.join(sorted(models))}")
    return models[adapter_id]


def score_intent_batch(adapter_id: str, queries: list[dict]) -> list[float]:
    """1.0 where the adapter predicts the gold intent, else 0.0."""
    preds = _support_model(adapter_id).predict([q["prompt"] for q in queries])
    return [1.0 if p == q["gold"] else 0.0 for p, q in zip(preds, queries)]


def score_intent(adapter_id: str, query: dict) -> float:
    """Per-query form of :func:`score_intent_batch` (``--scorer adaptergate.demos.catalog:score_intent``)."""
    return score_intent_batch(adapter_id, [query])[0]


def run_classifier(console: Console) -> int:
    """Train both classifiers, gate the candidate against the baseline; return the gate's code."""
    _say(
        console,
        "Demo: two support-intent classifiers, trained just now with numpy (naive Bayes on word"
        f" 1-2-grams), stand in for two adapter versions. {CANDIDATE_ADAPTER} learnt from a feedback"
        " batch that relabelled refund requests without an order number as order_status.",
    )
    train, holdout_rows = build_support_data()
    n_contaminated = sum(a != b for a, b in zip(contaminated_labels(train), (r["intent"] for r in train)))
    _say(
        console,
        f"  training set: {len(train)} examples, {len(_TEMPLATES)} intents, en + es;"
        f" {n_contaminated} labels differ for {CANDIDATE_ADAPTER}",
    )
    for adapter in (BASELINE_ADAPTER, CANDIDATE_ADAPTER):
        acc = float(np.mean(score_intent_batch(adapter, holdout_rows)))
        _say(console, f"  {adapter}: held-out accuracy {acc:.3f} on {len(holdout_rows)} queries")
    workdir = Path(tempfile.mkdtemp(prefix="adaptergate-classifier-"))
    holdout = workdir / "holdout.jsonl"
    _write_jsonl(holdout, holdout_rows)
    _say(console, "")
    scorer = Scorer(spec="adaptergate.demos.catalog:score_intent", single=score_intent, batch=score_intent_batch)
    code = _gate_and_print(
        console, tenant="demo", candidate=CANDIDATE_ADAPTER, baseline=BASELINE_ADAPTER,
        holdout=holdout, scorer=scorer, slice_epsilon=None,
    )
    _say(
        console,
        f"{CANDIDATE_ADAPTER} is still right on most queries; the driver slice says who pays for the"
        " feedback batch: refund requests without an order number (lost receipt, gifts) now go to"
        " order lookup instead of a refund.",
    )
    return code


# ======================================================================== sql
#
# Two text-to-SQL "adapters": the same small rule-based translator, standing
# in for two fine-tuned LoRAs. They differ in two ways: the candidate
# formats its SQL differently (lower-case keywords, one clause per line, a
# trailing semicolon), which the scorer must forgive, and it writes
# ``col = NULL`` where SQL needs ``col IS NULL``: valid SQL that compares
# with NULL, is never true, and silently returns no rows.

SQL_BASELINE = "sql_v1"
SQL_CANDIDATE = "sql_v2"
NULL_SLICE = "intent=null_check"

# (question, gold SQL, intent). Tables: customers(id, name, email, phone,
# country, tier), orders(id, customer_id, total, status, shipped_at, ship_address).
SQL_QUESTIONS: list[tuple[str, str, str]] = [
    ("List customers in Peru", "SELECT * FROM customers WHERE country = 'Peru'", "filter"),
    ("Show me the customers in Chile", "SELECT * FROM customers WHERE country = 'Chile'", "filter"),
    ("Customers in Spain", "SELECT * FROM customers WHERE country = 'Spain'", "filter"),
    ("Show orders over 50 dollars", "SELECT * FROM orders WHERE total > 50", "filter"),
    ("Which orders are over 200 dollars?", "SELECT * FROM orders WHERE total > 200", "filter"),
    ("Which customers are on the premium tier?", "SELECT * FROM customers WHERE tier = 'premium'", "filter"),
    ("Show orders with status pending", "SELECT * FROM orders WHERE status = 'pending'", "filter"),
    ("List the refunded orders", "SELECT * FROM orders WHERE status = 'refunded'", "filter"),
    ("How many orders does each customer have?",
     "SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id", "aggregate"),
    ("Order count per customer", "SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id", "aggregate"),
    ("Total revenue by order status", "SELECT status, SUM(total) FROM orders GROUP BY status", "aggregate"),
    ("How many customers are in Peru?", "SELECT COUNT(*) FROM customers WHERE country = 'Peru'", "aggregate"),
    ("How many customers are in Spain?", "SELECT COUNT(*) FROM customers WHERE country = 'Spain'", "aggregate"),
    ("What is the average order total?", "SELECT AVG(total) FROM orders", "aggregate"),
    ("Number of customers per country", "SELECT country, COUNT(*) FROM customers GROUP BY country", "aggregate"),
    ("Names of customers with an order over 100 dollars",
     "SELECT DISTINCT c.name FROM customers AS c JOIN orders AS o ON o.customer_id = c.id WHERE o.total > 100",
     "join"),
    ("Names of customers with an order over 500 dollars",
     "SELECT DISTINCT c.name FROM customers AS c JOIN orders AS o ON o.customer_id = c.id WHERE o.total > 500",
     "join"),
    ("Orders placed by customers in Chile",
     "SELECT o.* FROM orders AS o JOIN customers AS c ON c.id = o.customer_id WHERE c.country = 'Chile'", "join"),
    ("Orders placed by customers in Spain",
     "SELECT o.* FROM orders AS o JOIN customers AS c ON c.id = o.customer_id WHERE c.country = 'Spain'", "join"),
    ("Email addresses of customers with a pending order",
     "SELECT DISTINCT c.email FROM customers AS c JOIN orders AS o ON o.customer_id = c.id"
     " WHERE o.status = 'pending'", "join"),
    ("Email addresses of customers with a refunded order",
     "SELECT DISTINCT c.email FROM customers AS c JOIN orders AS o ON o.customer_id = c.id"
     " WHERE o.status = 'refunded'", "join"),
    ("Which customers are missing an email address?", "SELECT * FROM customers WHERE email IS NULL", "null_check"),
    ("List customers missing a phone number", "SELECT * FROM customers WHERE phone IS NULL", "null_check"),
    ("Show orders that have not shipped yet", "SELECT * FROM orders WHERE shipped_at IS NULL", "null_check"),
    ("Customers in Spain without an email address",
     "SELECT * FROM customers WHERE country = 'Spain' AND email IS NULL", "null_check"),
    ("How many customers have no phone number?", "SELECT COUNT(*) FROM customers WHERE phone IS NULL",
     "null_check"),
    ("Orders missing a shipping address", "SELECT * FROM orders WHERE ship_address IS NULL", "null_check"),
]

# Nullable columns, by the words that name them ("shipping address" before "ship").
_NULLABLE = (
    ("shipping address", "orders", "ship_address"),
    ("ship", "orders", "shipped_at"),
    ("email", "customers", "email"),
    ("phone", "customers", "phone"),
)
_NEGATION_RE = re.compile(r"\b(no|not|without|missing)\b")


def _sql_plan(question: str, null_test: str) -> list[tuple[str, str]]:
    """Translate one question into ``[(clause keyword, body), ...]``."""
    q = question.lower()
    m = re.search(r"\bin ([A-Z][a-z]+)", question)
    country = m.group(1) if m else None
    m = re.search(r"\bover (\d+)", q)
    amount = m.group(1) if m else None
    m = re.search(r"\b(pending|refunded)\b", q)
    status = m.group(1) if m else None
    counting = q.startswith("how many") and "each" not in q

    if _NEGATION_RE.search(q):
        for phrase, table, column in _NULLABLE:
            if phrase in q:
                conds = [f"country = '{country}'"] if country else []
                conds.append(f"{column} {null_test}")
                return [("SELECT", "COUNT(*)" if counting else "*"), ("FROM", table), ("WHERE", " AND ".join(conds))]
    if re.search(r"customers with an? (order|pending|refunded)", q):
        cond = f"o.total > {amount}" if amount else f"o.status = '{status}'"
        return [
            ("SELECT", f"DISTINCT c.{'email' if 'email' in q else 'name'}"),
            ("FROM", "customers AS c JOIN orders AS o ON o.customer_id = c.id"),
            ("WHERE", cond),
        ]
    if "placed by customers" in q:
        return [
            ("SELECT", "o.*"), ("FROM", "orders AS o JOIN customers AS c ON c.id = o.customer_id"),
            ("WHERE", f"c.country = '{country}'"),
        ]
    if "each customer" in q or "per customer" in q:
        return [("SELECT", "customer_id, COUNT(*)"), ("FROM", "orders"), ("GROUP BY", "customer_id")]
    if "by order status" in q:
        return [("SELECT", "status, SUM(total)"), ("FROM", "orders"), ("GROUP BY", "status")]
    if "per country" in q:
        return [("SELECT", "country, COUNT(*)"), ("FROM", "customers"), ("GROUP BY", "country")]
    if "average order" in q:
        return [("SELECT", "AVG(total)"), ("FROM", "orders")]
    table = "orders" if "order" in q else "customers"
    conds = []
    if country:
        conds.append(f"country = '{country}'")
    if amount:
        conds.append(f"total > {amount}")
    if "premium" in q:
        conds.append("tier = 'premium'")
    if status:
        conds.append(f"status = '{status}'")
    plan = [("SELECT", "COUNT(*)" if counting else "*"), ("FROM", table)]
    return plan + ([("WHERE", " AND ".join(conds))] if conds else [])


def sql_adapter_v1(question: str) -> str:
    """The production adapter: one line, upper-case keywords, ``IS NULL``."""
    return " ".join(f"{kw} {body}" for kw, body in _sql_plan(question, "IS NULL"))


def sql_adapter_v2(question: str) -> str:
    """The candidate: its own formatting (harmless) and ``= NULL`` (the bug)."""
    return "\n".join(f"{kw.lower()} {body}" for kw, body in _sql_plan(question, "= NULL")) + ";"


SQL_ADAPTERS = {SQL_BASELINE: sql_adapter_v1, SQL_CANDIDATE: sql_adapter_v2}


def _sqlglot():
    try:
        import sqlglot
    except ImportError:
        return None
    return sqlglot


def sql_backend() -> str:
    """How :func:`sql_equal` compares, in words."""
    sg = _sqlglot()
    if sg is not None:
        return f"AST equality (sqlglot {getattr(sg, '__version__', '')})".replace(" )", ")")
    return "normalised string equality (whitespace, case, trailing ';'); install sqlglot for AST equality"


def _normalise_sql(sql: str) -> str:
    return " ".join(sql.strip().rstrip(";").split()).lower()


def sql_equal(pred: str, gold: str) -> bool:
    """Whether two SQL strings say the same: sqlglot AST equality, else normalised text."""
    sg = _sqlglot()
    if sg is not None:
        try:
            return sg.parse_one(pred.strip().rstrip(";")) == sg.parse_one(gold.strip().rstrip(";"))
        except Exception:  # unparsable: only an identical text can match
            pass
    return _normalise_sql(pred) == _normalise_sql(gold)


def sql_holdout_rows() -> list[dict]:
    rows = []
    for i, (question, gold, intent) in enumerate(SQL_QUESTIONS):
        tables = sorted({t for t in ("customers", "orders") if t in gold})
        rows.append({
            "id": f"sql_{i:02d}", "prompt": question, "gold": gold,
            "slices": [f"intent={intent}", *(f"table={t}" for t in tables)],
        })
    return rows


def score_sql(adapter_id: str, query: dict) -> float:
    """1.0 when the adapter's SQL for the prompt equals the gold SQL (``--scorer adaptergate.demos.catalog:score_sql``)."""
    if adapter_id not in SQL_ADAPTERS:
        raise ValueError(f"unknown adapter {adapter_id!r}; this demo has {', '.join(sorted(SQL_ADAPTERS))}")
    return 1.0 if sql_equal(SQL_ADAPTERS[adapter_id](query["prompt"]), query["gold"]) else 0.0


def run_sql(console: Console) -> int:
    """Gate the SQL candidate against the baseline; return the gate's code."""
    rows = sql_holdout_rows()
    _say(
        console,
        f"Demo: a generative scorer. Two text-to-SQL \"adapters\" (Python functions standing in for"
        f" fine-tuned LoRAs) answer {len(rows)} questions, each scored against gold SQL."
        f" {SQL_CANDIDATE} writes '= NULL' where SQL needs 'IS NULL': valid SQL that silently"
        " matches no rows.",
    )
    _say(console, f"  scoring: {sql_backend()}")
    example = next(r for r in rows if NULL_SLICE in r["slices"])
    _say(console, f"  e.g. {example['prompt']!r}  gold: {example['gold']}")
    for name, adapter in SQL_ADAPTERS.items():
        sql = adapter(example["prompt"])
        verdict = "match" if sql_equal(sql, example["gold"]) else "no match"
        _say(console, f"    {name}: {' '.join(sql.split())}   ({verdict})")
    workdir = Path(tempfile.mkdtemp(prefix="adaptergate-sql-"))
    holdout = workdir / "holdout.jsonl"
    _write_jsonl(holdout, rows)
    _say(console, "")
    scorer = Scorer(spec="adaptergate.demos.catalog:score_sql", single=score_sql)
    code = _gate_and_print(
        console, tenant="demo", candidate=SQL_CANDIDATE, baseline=SQL_BASELINE, holdout=holdout,
        scorer=scorer, slice_epsilon=None,
    )
    _say(
        console,
        f"{SQL_CANDIDATE}'s formatting differs on every query and costs nothing; its NULL bug is"
        " silent on filters, aggregates and joins and total on null checks.",
    )
    return code
