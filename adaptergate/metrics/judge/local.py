"""The local judge: :class:`LocalJudge`, a local causal LM whose scores are chosen
by constrained decoding (the skeleton written by adaptergate, each score picked
from a token trie of ``1``..``10``), and :class:`LocalJudgeFactory`, which knows
its cache identity before the model is loaded."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from adaptergate.errors import InvalidInputError
from adaptergate.metrics.judge.cache import JudgeIdentity
from adaptergate.metrics.judge.criteria import SCORE_MAX, SCORE_MIN
from adaptergate.metrics.judge.prompts import build_messages, repair_message
from adaptergate.metrics.judge.replies import (
    JudgeOutputError,
    Judgement,
    first_object,
    parse_judgement,
    reasoning_of,
)
from adaptergate.metrics.judge.request import JudgeRequest, JudgeStats, still_malformed
from adaptergate.metrics.judge.settings import JudgeSettings

__all__ = ["LocalJudge", "LocalJudgeFactory"]


class LocalJudge:
    """A local causal LM as the judge, its scores chosen by constrained decoding."""

    kind = "model"

    def __init__(self, settings: JudgeSettings, gen: Any, identity: JudgeIdentity) -> None:
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
        # the padding of AdapterRunner._left_pad (adaptergate.backends.peft), a method there
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
                   "reasoning": reasoning_of(raw)}
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
                return parse_judgement(first_object(text), crit, pairwise=req.pairwise)
            except JudgeOutputError as exc:
                why = str(exc)
            if attempt < self.settings.retries:
                self.stats.repairs += 1
                messages = [*messages, {"role": "assistant", "content": text},
                            repair_message(why, crit, req.pairwise)]
        raise still_malformed(req, self.settings.retries + 1, why)

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


class LocalJudgeFactory:
    """Builds a :class:`LocalJudge` on demand; knows its cache identity before loading it."""

    def __init__(self, settings: JudgeSettings, gen: Any, *, allow_pickle: bool = False) -> None:
        self.settings, self.gen, self.allow_pickle = settings, gen, allow_pickle
        self._identity: JudgeIdentity | None = None

    def identity(self) -> JudgeIdentity:
        from adaptergate.backends.base_model import inspect_base

        assert self.settings.model is not None
        if self._identity is not None:
            return self._identity
        try:
            info = inspect_base(self.settings.model, allow_pickle=self.allow_pickle)
        except InvalidInputError as exc:
            raise InvalidInputError(f"--judge-model: {exc.message}", details=exc.details) from None
        ident = f"model:{info.sha256}"
        self._identity = JudgeIdentity(
            ident, f"{Path(self.settings.model).name} (sha256 {info.sha256[:12]})", "model",
            {"judge": ident, "dtype": self.gen.dtype, "quantize": self.gen.quantize,
             "reasoning_tokens": self.settings.reasoning_tokens},
        )
        return self._identity

    def __call__(self) -> LocalJudge:
        return LocalJudge(self.settings, self.gen, self.identity())
