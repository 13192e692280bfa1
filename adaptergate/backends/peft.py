"""The model runner: one base model, two LoRA adapters, batched evaluation.

The only module that imports torch, transformers and peft (inside
functions: ``import adaptergate`` stays light).

* The base is loaded once; both adapters attach to one ``PeftModel`` under
  their own names, and baseline and candidate rows share mixed-adapter
  batches (``adapter_names=``).
* Greedy generation with left padding, batches sorted by prompt length,
  ``max_new_tokens`` from the longest gold answer plus EOS, stop strings.
* Teacher-forced exact match: one forward pass over prompt + gold + EOS; a
  query passes iff the argmax at every gold position (and at EOS) is the gold
  token — what greedy decoding would produce — and the gold log-probability
  comes for free as a confidence margin.

Traps handled: a tokenizer without a pad token (EOS is used), right padding
(forced to the left), a failed mixed-adapter call (the adapter state is
restored before retrying one adapter at a time), thread oversubscription on
small CPU machines (``torch.set_num_threads``).

No code from model files: every transformers load passes
``trust_remote_code`` explicitly (``False`` unless the user gave
``--trust-remote-code`` on the command line), and a local model directory
whose ``config.json`` or ``tokenizer_config.json`` carries an ``auto_map`` is
refused before anything is loaded (:func:`check_no_remote_code`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from adaptergate.backends.base import BackendStats, GenerationSettings, cut_at_stop
from adaptergate.errors import EvaluationError, InvalidInputError


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get("TRANSFORMERS_OFFLINE", "") not in ("", "0")


REMOTE_CODE_FILES = ("config.json", "tokenizer_config.json")
"""The files whose ``auto_map`` makes transformers import Python code from the model directory."""


def check_no_remote_code(path: str | Path, *, what: str, trust_remote_code: bool = False) -> None:
    """Refuse a local model directory that asks transformers to run its own Python code.

    ``auto_map`` in ``config.json`` (model, config and tokenizer classes) or
    in ``tokenizer_config.json`` (tokenizer classes) names Python files in
    the directory that transformers imports when ``trust_remote_code`` is
    set, and asks about interactively when it is not decided. Such a
    directory is exit 2 unless ``trust_remote_code`` (``--trust-remote-code``
    on the command line). Reads JSON only: no torch, no transformers. A
    path that is not a local directory (a hub id) is left to the loader,
    which is called with ``trust_remote_code=False`` and refuses by itself.
    """
    if trust_remote_code:
        return
    root = Path(os.path.expanduser(str(path)))
    if not root.is_dir():
        return
    for name in REMOTE_CODE_FILES:
        file = root / name
        if not file.is_file():
            continue
        # fail closed: a file that cannot be read here cannot be shown to be free of auto_map
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(
                f"{what} {path}: cannot read {name}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        from adaptergate.trust import json_loads_bounded

        try:
            doc = json_loads_bounded(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{what} {path}: {name} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
        except ValueError as exc:  # nested too deeply, too large
            raise InvalidInputError(f"{what} {path}: {name} is not valid JSON: {exc}") from None
        if isinstance(doc, dict) and doc.get("auto_map"):
            raise InvalidInputError(
                f"{what} {path}: {name} asks to run the model's own Python code (auto_map); adaptergate does"
                " not run code from model files unless you pass --trust-remote-code on the command line"
            )


def load_causal_lm(path: str | Path, settings: GenerationSettings, *, what: str = "model") -> tuple[Any, Any, str]:
    """Load a causal LM and its tokenizer as the gate does: (tokenizer, model, device).

    Left padding, a pad token (EOS when the tokenizer has none), dtype and
    device from ``settings`` (bf16 on GPU, fp32 on CPU), bitsandbytes
    quantisation on request, thread count. Shared by :class:`AdapterRunner`
    (the base model) and :mod:`adaptergate.metrics.judge` (a local judge model).
    Model code (``auto_map``) runs only with ``settings.trust_remote_code``.
    """
    check_no_remote_code(path, what=what, trust_remote_code=settings.trust_remote_code)
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise InvalidInputError(
            f"model inputs need the ML stack ({exc.name} is missing): pip install 'adaptergate[peft]'"
        ) from None
    _quiet_transformers(transformers)
    base = path
    if settings.threads:
        _set_threads(settings.threads)
    cuda = torch.cuda.is_available()
    device = settings.device or ("cuda" if cuda else "cpu")
    if device == "cuda" and not cuda:
        raise InvalidInputError("--device cuda was asked for but no CUDA device is visible")
    dtype_name = settings.dtype or ("bfloat16" if device == "cuda" else "float32")
    dtype = getattr(torch, dtype_name, None)
    if dtype is None:
        raise InvalidInputError(f"unknown --dtype {dtype_name!r}")
    local = Path(str(base)).is_dir()
    # explicit, never left to transformers: undecided, it prompts on stdin before running model code
    kwargs: dict[str, Any] = {
        "local_files_only": local or _offline(), "trust_remote_code": bool(settings.trust_remote_code),
    }
    try:
        tok = transformers.AutoTokenizer.from_pretrained(str(base), **kwargs)
    except Exception as exc:  # noqa: BLE001 - report any loader failure as one line
        raise EvaluationError(f"cannot load the tokenizer of {base}: {type(exc).__name__}: {exc}") from exc
    tok.padding_side = "left"  # right padding silently breaks batched generation
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.eos_token_id is None:
        raise InvalidInputError(f"tokenizer of {base} has no EOS token: cannot tell where an answer ends")
    model_kwargs: dict[str, Any] = dict(kwargs, dtype=dtype)
    if settings.quantize:
        if device != "cuda":
            raise InvalidInputError("--quantize needs a CUDA device (bitsandbytes)")
        try:
            from transformers import BitsAndBytesConfig
        except ImportError:  # pragma: no cover
            raise InvalidInputError("--quantize needs bitsandbytes: pip install 'adaptergate[quant]'") from None
        q = settings.quantize
        if q not in ("4bit", "8bit"):
            raise InvalidInputError(f"--quantize must be 4bit or 8bit, got {q!r}")
        model_kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=q == "4bit", load_in_8bit=q == "8bit", bnb_4bit_compute_dtype=dtype
        )
        model_kwargs["device_map"] = "auto"
    elif device == "cuda":
        model_kwargs["device_map"] = "auto"  # accelerate places the layers
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(base), **model_kwargs)
    except Exception as exc:  # noqa: BLE001
        raise EvaluationError(f"cannot load {what} {base}: {type(exc).__name__}: {exc}") from exc
    if "device_map" not in model_kwargs:
        model.to(device)
    model.eval()
    return tok, model, device


def free_memory(device: str) -> None:
    """Collect what was released; on CUDA also return the cached blocks to the driver."""
    import gc

    gc.collect()
    if device == "cuda":
        try:
            import torch

            torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001 - best effort
            pass


class BasePool:
    """One loaded base model, lent to one :class:`AdapterRunner` after another.

    The manifest gate scores tenant after tenant, usually on one shared base:
    loading it once saves a full model load per tenant (tens of seconds for a
    7B model on a GPU runner). A runner borrows the base, attaches its
    adapters, and gives the base back clean (PEFT's ``unload()`` takes the
    LoRA layers out again). A base that was not given back (the run failed
    midway, the adapters may still be attached) is never lent again: the next
    borrower gets a fresh load.
    """

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._loaded: tuple[Any, Any, str] | None = None
        self._lent = False
        self.loads = 0

    def borrow(self, base: str | Path, settings: GenerationSettings) -> tuple[Any, Any, str]:
        key = (str(Path(str(base)).resolve()), settings.load_key())
        if self._loaded is None or self._lent or key != self._key:
            self.clear()
            self._loaded = load_causal_lm(base, settings, what="base model")
            self._key = key
            self.loads += 1
        elif settings.threads:
            _set_threads(settings.threads)
        self._lent = True
        return self._loaded

    def give_back(self, model: Any) -> None:
        """The base, with every adapter taken out again."""
        if self._loaded is None:
            return
        tok, _, device = self._loaded
        self._loaded = (tok, model, device)
        self._lent = False

    def clear(self) -> None:
        if self._loaded is None:
            return
        device = self._loaded[2]
        self._loaded, self._key, self._lent = None, None, False
        free_memory(device)


_SHARED_BASE: ContextVar[BasePool | None] = ContextVar("adaptergate_shared_base", default=None)


@contextmanager
def shared_base() -> Iterator[BasePool]:
    """Runners created inside share one loaded base model (see :class:`BasePool`)."""
    pool = BasePool()
    token = _SHARED_BASE.set(pool)
    try:
        yield pool
    finally:
        _SHARED_BASE.reset(token)
        pool.clear()


def drop_shared_base() -> None:
    """Free the shared base now (to make room for another model, e.g. a local judge)."""
    pool = _SHARED_BASE.get()
    if pool is not None:
        pool.clear()


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


class AdapterRunner:
    """A base model with named LoRA adapters, ready for batched evaluation: the ``peft``
    backend (:class:`~adaptergate.backends.base.Backend`), transformers + PEFT in this process."""

    name = "peft"
    supports_teacher_forcing = True

    def __init__(self, base: str | Path, adapters: dict[str, Path], settings: GenerationSettings | None = None) -> None:
        try:
            import torch
            from peft import PeftModel
        except ImportError as exc:
            raise InvalidInputError(
                f"model inputs need the ML stack ({exc.name} is missing): pip install 'adaptergate[peft]'"
            ) from None
        self.settings = settings or GenerationSettings()
        self.torch = torch
        self.stats = BackendStats()
        self._pool = _SHARED_BASE.get()
        if self._pool is not None:
            self.tokenizer, model, self.device = self._pool.borrow(base, self.settings)
        else:
            self.tokenizer, model, self.device = load_causal_lm(base, self.settings, what="base model")
        names = list(adapters)
        if not names:
            raise InvalidInputError("no adapters to load")
        try:
            # adapters carry weights and a config, never code: False whatever --trust-remote-code says
            peft_model = PeftModel.from_pretrained(
                model, str(adapters[names[0]]), adapter_name=names[0], trust_remote_code=False,
            )
            for name in names[1:]:
                peft_model.load_adapter(str(adapters[name]), adapter_name=name, trust_remote_code=False)
        except Exception as exc:  # noqa: BLE001
            raise EvaluationError(f"cannot attach adapters: {type(exc).__name__}: {exc}") from exc
        if getattr(model, "hf_device_map", None) is None:
            peft_model.to(self.device)
        peft_model.eval()
        self.model = peft_model
        self.adapter_names = names

    def close(self) -> None:
        """Release the model: back to the shared pool without its adapters, or freed."""
        model, self.model = self.model, None
        if model is None:
            return
        if self._pool is not None:
            try:
                base = model.unload()
            except Exception:  # noqa: BLE001 - never lend a base that may still carry adapters
                self._pool.clear()
                return
            self._pool.give_back(base)
        del model
        free_memory(self.device)

    def identity(self) -> dict[str, Any]:
        """PEFT in-process: the settings that change answers are in the cache key already."""
        return {"backend": self.name}

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(x) for x in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    # ------------------------------------------------------------ helpers

    def format_prompt(self, prompt: str) -> str:
        if not self.settings.chat_template:
            return prompt
        if not getattr(self.tokenizer, "chat_template", None):
            raise InvalidInputError("--chat-template was asked for but the tokenizer has none")
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]

    def _batches(self, order: list[int]) -> list[list[int]]:
        size = max(1, self.settings.batch_size)
        return [order[i:i + size] for i in range(0, len(order), size)]

    def _left_pad(self, seqs: list[list[int]]) -> tuple[Any, Any, int]:
        """Token ids and attention mask, padded on the left, on the model's device."""
        torch = self.torch
        width = max(len(x) for x in seqs)
        input_ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            input_ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq):] = 1
        return input_ids.to(self.model.device), mask.to(self.model.device), width

    def _rows(self, fn: Callable[[list[int], list[str] | None], Any], names: list[str]) -> list[Any]:
        """``fn(rows, adapter_names)`` for a batch whose rows use different adapters; one result per row.

        First one mixed-adapter call (``adapter_names=``, one adapter per
        row). If PEFT refuses it (a layer type or a quantisation that does
        not support mixed batches), the adapter state is reset and the batch
        is split: one call per adapter, with that adapter active.
        """
        everyone = list(range(len(names)))
        try:
            res = fn(everyone, names)
            return [res[r] for r in everyone]
        except Exception:
            # A failed mixed-adapter call can leave PEFT's forward hooks attached:
            # reset the active adapter before splitting the batch by adapter.
            self.stats.mixed_batch_fallbacks += 1
            self.model.set_adapter(self.adapter_names[0])
        out: list[Any] = [None] * len(names)
        for name in dict.fromkeys(names):
            rows = [r for r, n in enumerate(names) if n == name]
            self.model.set_adapter(name)
            res = fn(rows, None)
            for k, r in enumerate(rows):
                out[r] = res[k]
        return out

    # --------------------------------------------------------- generation

    def generate(
        self, prompts: Sequence[str], adapters: Sequence[str], *, max_new_tokens: int,
        progress: Callable[[int], None] | None = None,
    ) -> list[str]:
        """Greedy answers, one per (prompt, adapter) row, in input order."""
        import time

        torch = self.torch
        t0 = time.perf_counter()
        texts = [self.format_prompt(p) for p in prompts]
        ids = self._encode(texts)
        order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
        out: list[str | None] = [None] * len(ids)
        pad = self.tokenizer.pad_token_id
        eos = self.tokenizer.eos_token_id
        for batch in self._batches(order):
            input_ids, mask, width = self._left_pad([ids[i] for i in batch])
            names = [adapters[i] for i in batch]

            def run(rows: list[int], adapter_names: list[str] | None) -> Any:
                with torch.no_grad():
                    return self.model.generate(
                        input_ids=input_ids[rows], attention_mask=mask[rows], max_new_tokens=max_new_tokens,
                        do_sample=False, num_beams=1, pad_token_id=pad, eos_token_id=eos,
                        adapter_names=adapter_names,
                    )

            gen = [seq[width:] for seq in self._rows(run, names)]
            for r, i in enumerate(batch):
                toks = gen[r].tolist()
                if eos in toks:
                    toks = toks[: toks.index(eos)]
                self.stats.generated_tokens += len(toks)
                text = self.tokenizer.decode(toks, skip_special_tokens=True)
                out[i] = cut_at_stop(text, self.settings.stop)
            self.stats.forward_passes += 1
            if progress:
                progress(len(batch))
        self.stats.seconds += time.perf_counter() - t0
        return [o or "" for o in out]

    def teacher_forced(
        self, prompts: Sequence[str], golds: Sequence[str], adapters: Sequence[str],
        progress: Callable[[int], None] | None = None,
    ) -> tuple[list[bool], list[float]]:
        """Exact match of greedy decoding with the gold answer, in one forward pass per batch.

        A row passes iff, at every gold position and at the EOS after it, the
        argmax of the logits is the gold token: exactly the condition under
        which greedy decoding reproduces the gold answer and stops. Also
        returns the gold answer's log-probability.
        """
        import time

        torch = self.torch
        t0 = time.perf_counter()
        eos = self.tokenizer.eos_token_id
        p_ids = self._encode([self.format_prompt(p) for p in prompts])
        g_ids = self.tokenizer(list(golds), add_special_tokens=False)["input_ids"]
        seqs = [p + g + [eos] for p, g in zip(p_ids, g_ids)]
        order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), i))
        passed = [False] * len(seqs)
        logp = [0.0] * len(seqs)
        for batch in self._batches(order):
            input_ids, mask, width = self._left_pad([seqs[i] for i in batch])
            names = [adapters[i] for i in batch]

            def forward(rows: list[int], adapter_names: list[str] | None) -> Any:
                with torch.no_grad():
                    return self.model(
                        input_ids=input_ids[rows], attention_mask=mask[rows], adapter_names=adapter_names,
                    ).logits

            logits = torch.stack(self._rows(forward, names))
            logits = logits.float()
            log_probs = torch.log_softmax(logits, dim=-1)
            for row, i in enumerate(batch):
                n_target = len(g_ids[i]) + 1  # gold tokens + EOS
                start = width - n_target  # first target position in the padded row
                targets = input_ids[row, start:].to(logits.device)
                preds = logits[row, start - 1: width - 1].argmax(dim=-1)
                passed[i] = bool(torch.equal(preds, targets))
                logp[i] = float(log_probs[row, start - 1: width - 1].gather(1, targets[:, None]).sum())
            self.stats.forward_passes += 1
            if progress:
                progress(len(batch))
        self.stats.seconds += time.perf_counter() - t0
        return passed, logp


def _quiet_transformers(transformers: Any) -> None:
    """No weight-loading progress bars or deprecation chatter in a CI log."""
    import warnings

    transformers.logging.set_verbosity_error()
    try:
        transformers.utils.logging.disable_progress_bar()
    except AttributeError:  # pragma: no cover - older transformers
        pass
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"peft\..*")
