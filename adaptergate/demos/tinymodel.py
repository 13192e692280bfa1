"""A tiny, locally built model and two real LoRA adapters: the offline demo.

:func:`build_demo_assets` builds, in well under a minute on two CPU cores and
without any network access:

* a word-level tokenizer built with :mod:`tokenizers` from the task's text;
* a tiny Llama-architecture causal LM (2 layers, hidden size 64), pre-trained
  briefly on "generic" text of that vocabulary: the task's prompts, each
  followed by the answer of a *random* intent. The base therefore knows the
  prompt format and the answer phrases but not which answer goes with which
  prompt (about one answer in six is right);
* two PEFT LoRA adapters that teach that mapping: the *baseline* trained on
  correct prompt -> answer pairs, the *candidate* on the same rows except that
  one intent's answers (:data:`CORRUPTED_INTENT`) were replaced by another
  intent's answer -- a labelling bug. Gated on the holdout, the candidate
  regresses on that intent's slice only;
* the holdout (JSONL, ``{"id", "prompt", "gold", "slices"}``), disjoint from
  the training rows.

Builds are cached: a directory holding a complete build whose ``build.json``
names this builder's version and the requested seed is returned as is. A
build is written into a temporary directory beside the target and renamed
into place once complete, so an interrupted build never looks complete.

Training is deterministic for a seed: the same seed gives bit-identical
adapter weights (for a fixed torch build and thread count).

``import adaptergate.demos.tinymodel`` stays light: torch, transformers, peft and
tokenizers are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUILD_VERSION = "adaptergate-tinymodel-1"
"""Bump whenever the data, model or training recipe changes: old caches rebuild."""

CACHE_SUBDIR = "demo-v1"
MANIFEST = "build.json"

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"

CORRUPTED_INTENT = "refund"
CORRUPTED_AS = "cancel"
"""The candidate's training data answers refund prompts with cancel's answer."""

ANSWERS: dict[str, str] = {
    "refund": "start refund",
    "order_status": "lookup order",
    "cancel": "cancel order",
    "password_reset": "send reset link",
    "shipping": "check shipping options",
    "invoice": "send invoice copy",
}

# {o}: an order number, {p}: a product name.
TEMPLATES: dict[str, dict[str, list[str]]] = {
    "refund": {
        "en": [
            "i want my money back for the {p}",
            "please refund order {o}",
            "can i get a refund for my {p} ?",
            "the {p} is broken , i want a refund",
            "refund me for order {o} please",
            "how do i get my money back for order {o} ?",
            "i returned the {p} , where is my refund ?",
            "give me a refund for the {p} from order {o}",
            "i would like a refund , order {o}",
            "money back please , the {p} does not work",
        ],
        "es": [
            "quiero un reembolso por el {p}",
            "devuelvan mi dinero del pedido {o}",
            "el {p} llegó roto , quiero mi dinero",
            "reembolso del pedido {o} por favor",
            "cómo recupero mi dinero del {p} ?",
            "necesito un reembolso , pedido {o}",
        ],
    },
    "order_status": {
        "en": [
            "where is my order {o} ?",
            "where is my parcel {o} ?",
            "what is the status of order {o} ?",
            "has my {p} been sent yet ?",
            "when will my {p} arrive ?",
            "track order {o}",
            "my {p} has not arrived , order {o}",
            "is order {o} on its way ?",
            "any news about my {p} ?",
            "status of my {p} please",
        ],
        "es": [
            "dónde está mi pedido {o} ?",
            "cuándo llega mi {p} ?",
            "estado del pedido {o}",
            "ya enviaron mi {p} ?",
            "mi {p} no ha llegado , pedido {o}",
            "rastrear el pedido {o}",
        ],
    },
    "cancel": {
        "en": [
            "cancel my order {o}",
            "please cancel the {p}",
            "i do not want the {p} anymore , cancel it",
            "stop order {o} before it ships",
            "can i cancel order {o} ?",
            "i changed my mind about the {p}",
            "cancel the {p} from order {o}",
            "how do i cancel my {p} ?",
            "please stop my order {o}",
            "i ordered the {p} by mistake , cancel",
        ],
        "es": [
            "cancelar mi pedido {o}",
            "ya no quiero el {p} , cancelen",
            "puedo cancelar el pedido {o} ?",
            "cancelen el {p} por favor",
            "pedí el {p} por error",
            "anular el pedido {o}",
        ],
    },
    "password_reset": {
        "en": [
            "i forgot my password",
            "reset my password please",
            "i can not log in to my account",
            "how do i change my password ?",
            "my password does not work",
            "locked out of my account",
            "i need a new password to see order {o}",
            "password reset for my account please",
            "i can not sign in to check my {p}",
            "the login page says my password is wrong",
        ],
        "es": [
            "olvidé mi contraseña",
            "no puedo entrar a mi cuenta",
            "cambiar mi contraseña por favor",
            "mi contraseña no funciona",
            "necesito una contraseña nueva",
            "no puedo iniciar sesión para ver el pedido {o}",
        ],
    },
    "shipping": {
        "en": [
            "how much is shipping for the {p} ?",
            "do you ship the {p} abroad ?",
            "what are the shipping options ?",
            "can i get express delivery for the {p} ?",
            "how long does delivery take ?",
            "is shipping free for the {p} ?",
            "which carriers do you use ?",
            "can you ship order {o} faster ?",
            "what does delivery to spain cost ?",
            "do you offer next day delivery for the {p} ?",
        ],
        "es": [
            "cuánto cuesta el envío del {p} ?",
            "envían el {p} al extranjero ?",
            "qué opciones de envío hay ?",
            "el envío es gratis para el {p} ?",
            "cuánto tarda la entrega ?",
            "tienen envío urgente para el pedido {o} ?",
        ],
    },
    "invoice": {
        "en": [
            "i need an invoice for order {o}",
            "send me the invoice for the {p}",
            "where can i download my invoice ?",
            "i need a receipt for order {o}",
            "please email the bill for the {p}",
            "can i get a tax invoice for order {o} ?",
            "the invoice for my {p} is missing",
            "i need a copy of my bill",
            "invoice please , order {o}",
            "send a receipt for the {p} from order {o}",
        ],
        "es": [
            "necesito la factura del pedido {o}",
            "envíenme la factura del {p}",
            "dónde descargo mi factura ?",
            "quiero un recibo del pedido {o}",
            "falta la factura de mi {p}",
            "necesito una copia de la factura",
        ],
    },
}

PRODUCTS: dict[str, list[str]] = {
    "en": ["laptop", "phone", "jacket", "kettle", "lamp", "chair", "headset", "backpack",
           "camera", "blender", "monitor", "watch"],
    "es": ["portátil", "teléfono", "abrigo", "hervidor", "sillón", "mochila", "cámara",
           "reloj", "monitor", "batidora", "auricular", "escritorio"],
}

TRAIN_PER_TEMPLATE = 12
HOLDOUT_PER_INTENT = {"en": 16, "es": 8}

MODEL_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 64,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}
LORA_CONFIG: dict[str, Any] = {
    "r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                       "down_proj"],
}
BASE_STEPS, BASE_LR = 300, 3e-3
ADAPTER_STEPS, ADAPTER_LR = 200, 5e-3
BATCH_SIZE = 32


@dataclass(frozen=True)
class DemoAssets:
    root: Path
    base_dir: Path
    baseline_adapter: Path
    candidate_adapter: Path
    holdout: Path
    corrupted_intent: str

    @classmethod
    def at(cls, root: Path, corrupted_intent: str = CORRUPTED_INTENT) -> DemoAssets:
        return cls(
            root=root,
            base_dir=root / "base",
            baseline_adapter=root / "adapters" / "baseline",
            candidate_adapter=root / "adapters" / "candidate",
            holdout=root / "holdout.jsonl",
            corrupted_intent=corrupted_intent,
        )


def default_cache_dir() -> Path:
    """``$ADAPTERGATE_CACHE`` (or ``~/.cache/adaptergate``) ``/demo-v1``."""
    from adaptergate.storage import cache_root

    return cache_root() / CACHE_SUBDIR


# ---------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Row:
    id: str
    intent: str
    lang: str
    question: str

    @property
    def prompt(self) -> str:
        return f"Q: {self.question}\nA:"

    @property
    def gold(self) -> str:
        return ANSWERS[self.intent]


def _fill(template: str, lang: str, rng: random.Random, orders: Sequence[int]) -> str:
    return template.format(o=rng.choice(orders), p=rng.choice(PRODUCTS[lang]))


def make_task(seed: int) -> tuple[list[Row], list[Row]]:
    """The training rows and the holdout rows, for ``seed``.

    No holdout prompt appears in training: order numbers are split (training
    draws from one half of 1000-9999, the holdout from the other) and a
    product-only holdout prompt is kept out of the training draws. The holdout
    cycles through each intent's templates that take a filler.
    """
    rng = random.Random(f"adaptergate-demo-task:{seed}")
    numbers = list(range(1000, 10000))
    rng.shuffle(numbers)
    train_orders, holdout_orders = numbers[:4500], numbers[4500:]

    holdout: list[Row] = []
    held: set[str] = set()
    for intent, by_lang in TEMPLATES.items():
        for lang, templates in by_lang.items():
            filled = [t for t in templates if "{" in t]
            rng.shuffle(filled)
            for k in range(HOLDOUT_PER_INTENT[lang]):
                for _ in range(1000):
                    q = _fill(filled[k % len(filled)], lang, rng, holdout_orders)
                    if q not in held:
                        break
                else:  # pragma: no cover - the templates leave plenty of room
                    raise RuntimeError(f"could not draw the holdout for {intent}/{lang}")
                held.add(q)
                holdout.append(Row(f"{intent}-{lang}-{k + 1:02d}", intent, lang, q))

    train: list[Row] = []
    seen: set[str] = set(held)
    for intent, by_lang in TEMPLATES.items():
        for lang, templates in by_lang.items():
            for t_idx, template in enumerate(templates):
                want = TRAIN_PER_TEMPLATE if "{" in template else 1
                made = 0
                for _ in range(50 * want):
                    if made == want:
                        break
                    q = _fill(template, lang, rng, train_orders)
                    if q in seen:
                        continue
                    seen.add(q)
                    made += 1
                    train.append(Row(f"train-{intent}-{lang}-{t_idx}-{made}", intent, lang, q))
    return train, holdout


def holdout_record(row: Row) -> dict[str, Any]:
    return {
        "id": row.id,
        "prompt": row.prompt,
        "gold": row.gold,
        "slices": [f"intent={row.intent}", f"lang={row.lang}"],
    }


# ---------------------------------------------------------------------------
# Tokenizer and model


def _pre_tokenizer() -> Any:
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True)]
    )


def build_tokenizer(texts: Sequence[str]) -> Any:
    """A word-level tokenizer over ``texts``, as a transformers fast tokenizer.

    The vocabulary is every pre-token of ``texts`` ordered by frequency then
    spelling (what ``WordLevelTrainer`` does, minus its unordered ties), so it
    is identical from run to run. Prompts get ``<s>`` prepended; decoding joins
    words with single spaces, so an answer decodes to its gold string exactly.
    """
    from collections import Counter

    from tokenizers import Tokenizer, models, processors
    from transformers import PreTrainedTokenizerFast

    pre = _pre_tokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(tok for tok, _ in pre.pre_tokenize_str(text))
    specials = [PAD, BOS, EOS, UNK]
    vocab = {tok: i for i, tok in enumerate(specials)}
    for tok, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        vocab.setdefault(tok, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=MODEL_CONFIG["max_position_embeddings"],
    )


HEAD_DIMS = (16, 64)
"""Attention head widths a demo model can have: 16 (four heads, the demo) or 64 (one head: vLLM's
CPU attention needs a head_dim of 32 or more, so the serving-backend tests build this one)."""


def model_config(head_dim: int = 16) -> dict[str, Any]:
    """:data:`MODEL_CONFIG` with ``hidden_size / head_dim`` attention heads."""
    if head_dim not in HEAD_DIMS:
        raise ValueError(f"head_dim must be one of {HEAD_DIMS}, got {head_dim}")
    heads = MODEL_CONFIG["hidden_size"] // head_dim
    return {**MODEL_CONFIG, "num_attention_heads": heads, "num_key_value_heads": heads}


def _new_model(tokenizer: Any, head_dim: int = 16) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **model_config(head_dim),
    )
    model = LlamaForCausalLM(config)
    gc = model.generation_config
    gc.pad_token_id = tokenizer.pad_token_id
    gc.bos_token_id = tokenizer.bos_token_id
    gc.eos_token_id = tokenizer.eos_token_id
    gc.do_sample = False
    return model


@dataclass
class Batchable:
    """Right-padded training sequences: ids, attention mask, loss labels."""

    input_ids: Any
    attention_mask: Any
    labels: Any


def encode_pairs(
    tokenizer: Any, pairs: Sequence[tuple[str, str]], *, loss_on_prompt: bool
) -> Batchable:
    """``<s> prompt answer </s>`` per pair; loss on the answer and ``</s>``
    (and on the prompt too when ``loss_on_prompt``)."""
    import torch

    seqs: list[list[int]] = []
    labels: list[list[int]] = []
    for prompt, answer in pairs:
        p = tokenizer(prompt, add_special_tokens=True)["input_ids"]
        a = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        seqs.append(p + a)
        labels.append((p[1:] if loss_on_prompt else [-100] * (len(p) - 1)) + a)
        labels[-1].insert(0, -100)  # never predicted: <s>
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    lab = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (s, lb) in enumerate(zip(seqs, labels)):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
        lab[i, : len(lb)] = torch.tensor(lb)
    return Batchable(ids, mask, lab)


def _train(
    model: Any,
    data: Batchable,
    *,
    steps: int,
    lr: float,
    seed: int,
    what: str,
    progress: Callable[[str], None] | None = None,
) -> float:
    """Adam on random mini-batches; returns the mean loss of the last 20 steps."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 20) * max(0.05, 1.0 - s / steps)
    )
    gen = torch.Generator().manual_seed(seed)
    n = data.input_ids.shape[0]
    model.train()
    recent: list[float] = []
    for step in range(steps):
        idx = torch.randint(0, n, (BATCH_SIZE,), generator=gen)
        mask = data.attention_mask[idx]
        width = int(mask.sum(1).max())
        out = model(
            input_ids=data.input_ids[idx, :width],
            attention_mask=mask[:, :width],
            labels=data.labels[idx, :width],
        )
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        recent = (recent + [out.loss.detach().item()])[-20:]
        if progress and (step + 1) % 100 == 0:
            progress(f"{what}: step {step + 1}/{steps}, loss {sum(recent) / len(recent):.3f}")
    model.eval()
    return sum(recent) / len(recent)


def greedy_answers(model: Any, tokenizer: Any, prompts: Sequence[str], *,
                   max_new_tokens: int | None = None, batch_size: int = 64) -> list[str]:
    """Greedy generation with left padding; the decoded continuations, stripped."""
    import torch

    if max_new_tokens is None:
        max_new_tokens = max(len(tokenizer(a, add_special_tokens=False)["input_ids"])
                             for a in ANSWERS.values()) + 1
    out: list[str] = []
    model.eval()
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        enc = tokenizer(chunk, return_tensors="pt", padding=True)
        with torch.no_grad():
            gen = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new = gen[:, enc["input_ids"].shape[1] :]
        out.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
    return out


# ---------------------------------------------------------------------------
# Build


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No transformers progress bars or deprecation chatter during a build."""
    import warnings

    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _torch_threads() -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    # One thread: a 96k-parameter model gains nothing from a second one, and
    # on a busy 2-core machine two threads were measured 10x slower (220 s).
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    with contextlib.suppress(ImportError):
        import numpy as np

        np.random.seed(seed % 2**32)


def _read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_complete(root: Path, seed: int, head_dim: int = 16) -> bool:
    manifest = _read_manifest(root)
    if not manifest or manifest.get("version") != BUILD_VERSION or manifest.get("seed") != seed:
        return False
    if manifest.get("head_dim", 16) != head_dim:
        return False
    assets = DemoAssets.at(root, str(manifest.get("corrupted_intent", CORRUPTED_INTENT)))
    needed = [
        assets.base_dir / "config.json",
        assets.base_dir / "model.safetensors",
        assets.base_dir / "tokenizer.json",
        assets.baseline_adapter / "adapter_config.json",
        assets.baseline_adapter / "adapter_model.safetensors",
        assets.candidate_adapter / "adapter_config.json",
        assets.candidate_adapter / "adapter_model.safetensors",
        assets.holdout,
    ]
    return all(p.is_file() for p in needed)


def _cached(root: Path) -> DemoAssets:
    manifest = _read_manifest(root) or {}
    return DemoAssets.at(root, str(manifest.get("corrupted_intent", CORRUPTED_INTENT)))


def _train_adapter(
    base_dir: Path,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    out_dir: Path,
    *,
    seed: int,
    final_base_dir: Path,
    what: str,
    progress: Callable[[str], None] | None,
) -> tuple[Any, float]:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    _seed_everything(seed)
    base = LlamaForCausalLM.from_pretrained(base_dir, local_files_only=True)
    model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", **LORA_CONFIG))
    data = encode_pairs(tokenizer, pairs, loss_on_prompt=False)
    loss = _train(model, data, steps=ADAPTER_STEPS, lr=ADAPTER_LR, seed=seed, what=what,
                  progress=progress)
    model.peft_config["default"].base_model_name_or_path = str(final_base_dir)
    # The base is not at its final path yet: skip peft's vocabulary-change probe.
    model.save_pretrained(out_dir, safe_serialization=True, save_embedding_layers=False)
    return model, loss


def _build_into(work: Path, final: Path, seed: int,
                progress: Callable[[str], None] | None, head_dim: int = 16) -> dict[str, Any]:
    """Train everything into ``work``; returns the manifest (written last)."""
    assets = DemoAssets.at(work)
    final_assets = DemoAssets.at(final)
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()

    train, holdout = make_task(seed)
    say(f"task: {len(train)} training rows, {len(holdout)} holdout queries,"
        f" {len(ANSWERS)} intents, corrupted intent {CORRUPTED_INTENT!r}")
    texts = [r.prompt for r in train] + list(ANSWERS.values())
    tokenizer = build_tokenizer(texts)
    unknown = [r.id for r in holdout
               if tokenizer.unk_token_id in tokenizer(r.prompt)["input_ids"]]
    if unknown:  # pragma: no cover - the holdout draws from the training words
        raise RuntimeError(f"holdout words missing from the vocabulary: {unknown[:5]}")

    # Base: prompts followed by a random intent's answer -- the format and the
    # answer vocabulary, not the mapping.
    _seed_everything(seed)
    mix = random.Random(f"adaptergate-demo-base:{seed}")
    answers = sorted(ANSWERS.values())
    base_pairs = [(r.prompt, mix.choice(answers)) for r in train for _ in range(2)]
    model = _new_model(tokenizer, head_dim)
    say(f"base: tiny Llama, {sum(p.numel() for p in model.parameters()):,} parameters,"
        f" vocabulary {len(tokenizer)}")
    base_loss = _train(model, encode_pairs(tokenizer, base_pairs, loss_on_prompt=True),
                       steps=BASE_STEPS, lr=BASE_LR, seed=seed, what="base", progress=progress)
    model.save_pretrained(assets.base_dir, safe_serialization=True)
    tokenizer.save_pretrained(assets.base_dir)
    del model

    good = [(r.prompt, r.gold) for r in train]
    bad = [(r.prompt, ANSWERS[CORRUPTED_AS] if r.intent == CORRUPTED_INTENT else r.gold)
           for r in train]
    baseline, baseline_loss = _train_adapter(
        assets.base_dir, tokenizer, good, assets.baseline_adapter, seed=seed + 1,
        final_base_dir=final_assets.base_dir, what="baseline adapter", progress=progress)
    candidate, candidate_loss = _train_adapter(
        assets.base_dir, tokenizer, bad, assets.candidate_adapter, seed=seed + 1,
        final_base_dir=final_assets.base_dir, what="candidate adapter", progress=progress)

    # Self-check: the story the demo tells must hold, or the build fails.
    prompts = [r.prompt for r in holdout]
    accuracy: dict[str, dict[str, float]] = {}
    for name, model in (("baseline", baseline), ("candidate", candidate)):
        outs = greedy_answers(model, tokenizer, prompts)
        per: dict[str, list[bool]] = {}
        for row, out in zip(holdout, outs):
            per.setdefault(row.intent, []).append(out == row.gold)
        accuracy[name] = {k: sum(v) / len(v) for k, v in per.items()}
        accuracy[name]["all"] = sum(sum(v) for v in per.values()) / len(holdout)

    problems = _story_problems(accuracy)
    if problems:
        raise RuntimeError(
            f"the demo adapters do not tell the intended story (seed {seed}): "
            + "; ".join(problems)
        )

    lines = [json.dumps(holdout_record(r), ensure_ascii=False) for r in holdout]
    assets.holdout.write_text("\n".join(lines) + "\n", encoding="utf-8")
    seconds = time.perf_counter() - t0
    manifest = {
        "version": BUILD_VERSION,
        "seed": seed,
        **({"head_dim": head_dim} if head_dim != 16 else {}),
        "corrupted_intent": CORRUPTED_INTENT,
        "corrupted_as": CORRUPTED_AS,
        "answers": ANSWERS,
        "train_rows": len(train),
        "holdout_rows": len(holdout),
        "final_loss": {"base": base_loss, "baseline": baseline_loss, "candidate": candidate_loss},
        "holdout_accuracy": accuracy,
        "build_seconds": round(seconds, 1),
    }
    say(f"built in {seconds:.1f}s: baseline {accuracy['baseline']['all']:.0%} on the holdout,"
        f" candidate {accuracy['candidate']['all']:.0%}"
        f" ({accuracy['candidate'][CORRUPTED_INTENT]:.0%} on {CORRUPTED_INTENT})")
    return manifest


MIN_GOOD_ACCURACY = 0.95
MAX_CORRUPTED_ACCURACY = 0.10


def _story_problems(accuracy: dict[str, dict[str, float]]) -> list[str]:
    """Why per-intent holdout accuracies do not tell the demo's story (empty: they do)."""
    problems = []
    for intent in ANSWERS:
        b, c = accuracy["baseline"][intent], accuracy["candidate"][intent]
        if b < MIN_GOOD_ACCURACY:
            problems.append(f"baseline {b:.0%} on {intent}")
        if intent == CORRUPTED_INTENT and c > MAX_CORRUPTED_ACCURACY:
            problems.append(f"candidate {c:.0%} on the corrupted {intent}")
        if intent != CORRUPTED_INTENT and c < MIN_GOOD_ACCURACY:
            problems.append(f"candidate {c:.0%} on {intent}")
    return problems


def build_demo_assets(
    cache_dir: Path | None = None,
    *,
    seed: int = 0,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    head_dim: int = 16,
) -> DemoAssets:
    """Build (or reuse) the demo model, adapters and holdout under ``cache_dir``.

    ``cache_dir`` defaults to :func:`default_cache_dir`. A complete build for
    this version, ``seed`` and ``head_dim`` (:func:`model_config`) is returned
    without training unless ``force``.
    """
    model_config(head_dim)  # a bad width fails before anything is built
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root = root.expanduser().absolute()
    if not force and _is_complete(root, seed, head_dim):
        return _cached(root)

    from adaptergate.storage import file_lock, fsync_dir

    root.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(root, timeout=600.0):
        # Another process may have finished the same build while we waited.
        if not force and _is_complete(root, seed, head_dim):
            return _cached(root)
        # Under the lock, leftovers of a build that was killed outright are stale.
        for stale in [*root.parent.glob(f".{root.name}.build-*"),
                      *root.parent.glob(f".{root.name}.old-*")]:
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f".{root.name}.build-", dir=root.parent))
        try:
            with _torch_threads(), _quiet():
                manifest = _build_into(work, root, seed, progress, head_dim)
            # The manifest goes last: a directory without it is never complete.
            (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            os.chmod(work, 0o755)
            if root.exists() or root.is_symlink():
                old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
                os.replace(root, old / "x")
                os.replace(work, root)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(work, root)
            fsync_dir(root.parent)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    return DemoAssets.at(root, CORRUPTED_INTENT)
