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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from adaptergate.backends.base import BackendStats, GenerationSettings, ScopedPool, TokenizerText, cut_at_stop
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


_SHARED = ScopedPool("adaptergate_shared_base", BasePool)
shared_base = _SHARED.scope
"""Runners created inside share one loaded base model (see :class:`BasePool`)."""
drop_shared_base = _SHARED.drop
"""Free the shared base now (to make room for another model, e.g. a local judge)."""


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


AUTO_BATCH_SIZE = 16
"""The batch size that means "size the batches for me" on a GPU: the default of
:class:`~adaptergate.backends.base.GenerationSettings` and of ``--batch-size``. On CUDA such a
runner fills each batch up to what the free GPU memory holds for the rows' lengths
(:meth:`AdapterRunner._plan`, at most :data:`AUTO_MAX_ROWS` rows); any other value is used as
given, and on the CPU every batch is ``batch_size`` rows."""

AUTO_MAX_ROWS = 512
"""The most rows in one automatically sized batch."""

AUTO_MEMORY_FRACTION = 0.6
"""The share of the free GPU memory an automatically sized batch plans to fill (the per-token
estimate is rough; an out-of-memory batch is split in two and the later batches shrink)."""


def _is_oom(exc: BaseException) -> bool:
    oom = getattr(_torch_module(), "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _torch_module() -> Any:
    import sys

    return sys.modules.get("torch")


class AdapterRunner(TokenizerText):
    """A base model with named LoRA adapters, ready for batched evaluation: the ``peft``
    backend (:class:`~adaptergate.backends.base.Backend`), transformers + PEFT in this process.

    Batches: rows are sorted by prompt length (a batch pads to its longest row). On the CPU
    baseline and candidate rows share mixed-adapter batches (``adapter_names=``). On a GPU the
    rows are grouped by adapter first and a batch of one adapter runs with that adapter active
    and no ``adapter_names``: PEFT's mixed-batch path indexes every LoRA layer's input and
    output with Python lists, each a host-to-device copy that waits for the GPU, per layer and
    decoding step.
    Answers are the same either way. ``stats.extra`` holds the load time, the weights' bytes,
    decoding steps, the batch sizes used and the peak memory (see :meth:`_note_memory`).
    """

    name = "peft"
    supports_teacher_forcing = True

    def __init__(self, base: str | Path, adapters: dict[str, Path], settings: GenerationSettings | None = None) -> None:
        import time

        try:
            import torch
            from peft import PeftModel
        except ImportError as exc:
            raise InvalidInputError(
                f"model inputs need the ML stack ({exc.name} is missing): pip install 'adaptergate[peft]'"
            ) from None
        t0 = time.perf_counter()
        self.settings = settings or GenerationSettings()
        self.torch = torch
        self.stats = BackendStats()
        self._pool = _SHARED.current()
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
        self.on_gpu = str(self.device).startswith("cuda")
        self.group_by_adapter = self.on_gpu
        """One adapter per batch, run without ``adapter_names`` (see the class docstring)."""
        self.size_from_memory = self.on_gpu
        """Whether ``batch_size`` :data:`AUTO_BATCH_SIZE` sizes batches from the free GPU memory."""
        self._budget_scale = 1.0  # halved after each out-of-memory batch
        # teacher forcing computes the logits of the gold positions only: on a GPU, where the logits
        # of every prompt position ([rows, length, vocab] in float32) limit the batch. The CPU keeps
        # the full logits: the output head on fewer rows changes the log-probabilities in the last
        # bits (never a pass/fail seen), and the CPU's answers stay bit for bit what they were.
        self._keep_logits = self.on_gpu and _accepts_logits_to_keep(model)
        if self.on_gpu:
            torch.cuda.synchronize()
        self.stats.extra.update(self._describe(time.perf_counter() - t0))

    def _describe(self, load_s: float) -> dict[str, Any]:
        base_bytes = adapter_bytes = 0
        dtype = None
        for pname, p in self.model.named_parameters():
            if "lora_" in pname:
                adapter_bytes += p.numel() * p.element_size()
            else:
                base_bytes += p.numel() * p.element_size()
                dtype = dtype or str(p.dtype).removeprefix("torch.")
        device_name = "cpu"
        if self.on_gpu:
            try:
                device_name = self.torch.cuda.get_device_name(self._cuda_devices()[0])
            except Exception:  # noqa: BLE001 - a name is nice to have
                device_name = "cuda"
        return {
            "load_seconds": round(load_s, 3), "weight_bytes": base_bytes, "adapter_bytes": adapter_bytes,
            "dtype": dtype, "device_name": device_name,
        }

    @property
    def auto_batch(self) -> bool:
        """Batches sized from the free GPU memory (see :data:`AUTO_BATCH_SIZE`)."""
        return self.size_from_memory and self.settings.batch_size == AUTO_BATCH_SIZE

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

    # ------------------------------------------------------------ helpers

    def _cuda_devices(self) -> list[Any]:
        devices = {p.device for p in self.model.parameters() if p.device.type == "cuda"}
        return sorted(devices, key=lambda d: d.index or 0) or [self.torch.device("cuda")]

    def _plan(self, lengths: Sequence[int], adapters: Sequence[str], *, new_tokens: int,
              logit_positions: int | None) -> list[list[int]]:
        """Batches of row indices, each sorted by length so that a batch pads to its longest row.

        ``new_tokens``: tokens each row grows by (generation) and ``logit_positions``: output
        positions whose logits are kept per row (``None``: all of them) — what an automatically
        sized batch budgets for.
        """
        self.stats.extra["batch_size"] = "auto" if self.auto_batch else max(1, self.settings.batch_size)
        key = lambda i: (lengths[i], i)  # noqa: E731
        if self.group_by_adapter:
            groups: dict[str, list[int]] = {}
            for i, name in enumerate(adapters):
                groups.setdefault(name, []).append(i)
            orders = [sorted(rows, key=key) for rows in groups.values()]
        else:
            orders = [sorted(range(len(lengths)), key=key)]
        batches: list[list[int]] = []
        for order in orders:
            if self.auto_batch:
                batches += self._fit(order, lengths, new_tokens, logit_positions)
            else:
                size = max(1, self.settings.batch_size)
                batches += [order[i:i + size] for i in range(0, len(order), size)]
        return batches

    def _memory_budget(self) -> int:
        """Bytes an automatically sized batch may fill: a share of the free GPU memory (and of what
        torch holds cached but unused), on the fullest of the model's devices."""
        cuda = self.torch.cuda
        free = min(cuda.mem_get_info(d)[0] for d in self._cuda_devices())
        cached = max(0, cuda.memory_reserved() - cuda.memory_allocated())
        return int((free + cached) * AUTO_MEMORY_FRACTION * self._budget_scale)

    def _bytes_per_token(self) -> tuple[int, int, int]:
        """Rough GPU bytes of a batch row: per token (KV cache and one layer's activations), per
        token squared (attention scores, where the attention materialises them) and per kept logit
        position (the logits in the model's dtype, in float32 and their log-softmax); the first two
        doubled for headroom (LoRA intermediates, the allocator's slack)."""
        cfg = getattr(self.model.get_base_model(), "config", None)
        get = lambda k, d: getattr(cfg, k, None) or d  # noqa: E731
        hidden = get("hidden_size", 4096)
        heads = get("num_attention_heads", 32)
        layers = get("num_hidden_layers", 32)
        kv_heads = get("num_key_value_heads", heads)
        head_dim = get("head_dim", hidden // max(1, heads))
        inter = get("intermediate_size", 4 * hidden)
        vocab = get("vocab_size", 32000)
        elt = next(self.model.parameters()).element_size()
        per_token = 2 * layers * kv_heads * head_dim * elt + (6 * hidden + 3 * inter) * elt
        return 2 * per_token, 2 * (heads * 4 + 4), vocab * (elt + 12)

    def _fit(self, order: list[int], lengths: Sequence[int], new_tokens: int,
             logit_positions: int | None) -> list[list[int]]:
        budget = self._memory_budget()
        per_token, per_square, per_logit = self._bytes_per_token()
        batches: list[list[int]] = []
        batch: list[int] = []
        for i in order:  # ascending length: the row being added is the longest so far
            rows = len(batch) + 1
            width = lengths[i] + new_tokens
            logits = lengths[i] if logit_positions is None else logit_positions
            need = rows * (width * per_token + width * width * per_square + logits * per_logit)
            if batch and (rows > AUTO_MAX_ROWS or need > budget):
                batches.append(batch)
                batch = []
            batch.append(i)
        if batch:
            batches.append(batch)
        return batches

    def _run_batch(self, batch: list[int], run: Callable[[list[int]], None]) -> None:
        """``run(batch)``; on a GPU out of memory, the batch again in two halves (and later
        automatically sized batches half as large)."""
        try:
            run(batch)
            return
        except Exception as exc:  # noqa: BLE001
            if not (self.on_gpu and _is_oom(exc)) or len(batch) == 1:
                raise
        # outside the except block: the traceback no longer holds the failed batch's tensors
        self.stats.extra["oom_splits"] = self.stats.extra.get("oom_splits", 0) + 1
        self._budget_scale /= 2
        free_memory(self.device)
        half = len(batch) // 2
        self._run_batch(batch[:half], run)
        self._run_batch(batch[half:], run)

    def _left_pad(self, seqs: list[list[int]]) -> tuple[Any, Any, int]:
        """Token ids and attention mask, padded on the left, on the model's device."""
        torch = self.torch
        width = max(len(x) for x in seqs)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(s)) + list(s) for s in seqs], dtype=torch.long)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], dtype=torch.long)
        return input_ids.to(self.model.device), mask.to(self.model.device), width

    def _activate(self, name: str) -> None:
        if self.model.active_adapter == name:
            return
        try:
            self.model.set_adapter(name, inference_mode=True)
        except TypeError:  # pragma: no cover - PEFT before inference_mode=
            self.model.set_adapter(name)

    def _rows(self, fn: Callable[[list[int], list[str] | None], Any], names: list[str]) -> list[tuple[list[int], Any]]:
        """``fn(rows, adapter_names)`` for one batch: ``(rows, result)`` pieces covering every row.

        A batch of one adapter runs with that adapter active (no ``adapter_names``). A batch of
        several first tries one mixed-adapter call (``adapter_names=``, one adapter per row). If
        PEFT refuses it (a layer type or a quantisation that does not support mixed batches), the
        adapter state is reset and the batch is split: one call per adapter, with that adapter
        active.
        """
        everyone = list(range(len(names)))
        if len(set(names)) == 1:
            self._activate(names[0])
            return [(everyone, fn(everyone, None))]
        try:
            return [(everyone, fn(everyone, names))]
        except Exception as exc:
            if _is_oom(exc):
                raise
            # A failed mixed-adapter call can leave PEFT's forward hooks attached:
            # reset the active adapter before splitting the batch by adapter.
            self.stats.mixed_batch_fallbacks += 1
            self.model.set_adapter(self.adapter_names[0])
        pieces = []
        for name in dict.fromkeys(names):
            rows = [r for r, n in enumerate(names) if n == name]
            self.model.set_adapter(name)
            pieces.append((rows, fn(rows, None)))
        return pieces

    def _note_memory(self) -> None:
        """Peak memory of this process so far: the GPU's allocations on CUDA, else the resident set."""
        extra = self.stats.extra
        if self.on_gpu:
            cuda = self.torch.cuda
            peak = max(cuda.max_memory_allocated(d) for d in self._cuda_devices())
            extra["peak_memory_bytes"] = max(extra.get("peak_memory_bytes", 0), peak)
            extra["peak_memory_kind"] = "cuda max_memory_allocated"
        else:
            rss = _peak_rss()
            if rss is None:  # pragma: no cover - neither Linux nor POSIX
                return
            extra["peak_memory_bytes"] = max(extra.get("peak_memory_bytes", 0), rss)
            extra["peak_memory_kind"] = "process peak RSS"

    def _count_batch(self, rows: int) -> None:
        extra = self.stats.extra
        extra["batches"] = extra.get("batches", 0) + 1
        extra["max_batch_rows"] = max(extra.get("max_batch_rows", 0), rows)

    def _add_seconds(self, key: str, seconds: float) -> None:
        self.stats.seconds += seconds
        self.stats.extra[key] = round(self.stats.extra.get(key, 0.0) + seconds, 6)

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
        out: list[str] = [""] * len(ids)
        pad = self.tokenizer.pad_token_id
        eos = self.tokenizer.eos_token_id
        extra = self.stats.extra

        def run(batch: list[int]) -> None:
            input_ids, mask, width = self._left_pad([ids[i] for i in batch])

            def call(rows: list[int], adapter_names: list[str] | None) -> Any:
                whole = len(rows) == len(batch)  # no gather: a list index is a copy to the device
                with torch.no_grad():
                    return self.model.generate(
                        input_ids=input_ids if whole else input_ids[rows],
                        attention_mask=mask if whole else mask[rows], max_new_tokens=max_new_tokens,
                        do_sample=False, num_beams=1, pad_token_id=pad, eos_token_id=eos,
                        adapter_names=adapter_names,
                    )

            texts_of: dict[int, str] = {}
            for rows, seqs in self._rows(call, [adapters[i] for i in batch]):
                steps = int(seqs.shape[1]) - width
                extra["decode_steps"] = extra.get("decode_steps", 0) + steps
                extra["decode_slots"] = extra.get("decode_slots", 0) + steps * len(rows)
                for r, toks in zip(rows, seqs[:, width:].tolist()):  # one copy to the host per call
                    if eos in toks:
                        toks = toks[: toks.index(eos)]
                    self.stats.generated_tokens += len(toks)
                    texts_of[r] = cut_at_stop(self.tokenizer.decode(toks, skip_special_tokens=True), self.settings.stop)
            for r, i in enumerate(batch):
                out[i] = texts_of[r]
            self._count_batch(len(batch))

        for batch in self._plan([len(x) for x in ids], adapters, new_tokens=max_new_tokens, logit_positions=1):
            self._run_batch(batch, run)
            self.stats.forward_passes += 1
            if progress:
                progress(len(batch))
        if self.on_gpu:
            torch.cuda.synchronize()
        extra["generated_tokens"] = self.stats.generated_tokens
        self._note_memory()
        self._add_seconds("generate_seconds", time.perf_counter() - t0)
        return out

    def teacher_forced(
        self, prompts: Sequence[str], golds: Sequence[str], adapters: Sequence[str],
        progress: Callable[[int], None] | None = None,
    ) -> tuple[list[bool], list[float]]:
        """Exact match of greedy decoding with the gold answer, in one forward pass per batch.

        A row passes iff, at every gold position and at the EOS after it, the
        argmax of the logits is the gold token: exactly the condition under
        which greedy decoding reproduces the gold answer and stops. Also
        returns the gold answer's log-probability. On a GPU only the logits of
        the gold positions are computed (``logits_to_keep``) where the model allows it.
        """
        import time

        torch = self.torch
        t0 = time.perf_counter()
        eos = self.tokenizer.eos_token_id
        p_ids = self._encode([self.format_prompt(p) for p in prompts])
        g_ids = self.tokenizer(list(golds), add_special_tokens=False)["input_ids"]
        seqs = [p + g + [eos] for p, g in zip(p_ids, g_ids)]
        passed = [False] * len(seqs)
        logp = [0.0] * len(seqs)
        extra = self.stats.extra
        longest_gold = max((len(g) + 1 for g in g_ids), default=1)

        def run(batch: list[int]) -> None:
            input_ids, mask, width = self._left_pad([seqs[i] for i in batch])
            # gold tokens + EOS; 0 for a row without a prompt token (nothing predicts its first
            # token): it never passes
            n_target = [len(g_ids[i]) + 1 if len(g_ids[i]) + 1 < len(seqs[i]) else 0 for i in batch]
            k = max(n_target)  # the targets are the last k positions of every (left-padded) row
            keep = {"logits_to_keep": k + 1} if self._keep_logits else {}

            def forward(rows: list[int], adapter_names: list[str] | None) -> Any:
                whole = len(rows) == len(batch)
                with torch.no_grad():
                    return self.model(
                        input_ids=input_ids if whole else input_ids[rows],
                        attention_mask=mask if whole else mask[rows], adapter_names=adapter_names, **keep,
                    ).logits

            for rows, logits in self._rows(forward, [adapters[i] for i in batch]):
                n = logits.shape[1]
                window = logits[:, n - k - 1: n - 1].float()  # the logits that predict the last k tokens
                targets = (input_ids if len(rows) == len(batch) else input_ids[rows])[:, width - k:]
                targets = targets.to(window.device)
                hits = window.argmax(dim=-1) == targets
                gold_lp = torch.log_softmax(window, dim=-1).gather(2, targets[:, :, None])[:, :, 0]
                firsts = torch.tensor([k - n_target[r] for r in rows], device=window.device)
                in_gold = torch.arange(k, device=window.device)[None, :] >= firsts[:, None]
                ok = (hits | ~in_gold).all(dim=1)
                sums = torch.stack([gold_lp[j, k - n_target[r]:].sum() for j, r in enumerate(rows)])
                extra["teacher_forced_tokens"] = extra.get("teacher_forced_tokens", 0) + sum(
                    len(seqs[batch[r]]) for r in rows)
                for r, good, lp in zip(rows, ok.tolist(), sums.tolist()):  # one copy to the host each
                    passed[batch[r]] = bool(good) and n_target[r] > 0
                    logp[batch[r]] = float(lp)
            self._count_batch(len(batch))

        plan = self._plan([len(x) for x in seqs], adapters, new_tokens=0,
                          logit_positions=longest_gold + 1 if self._keep_logits else None)
        for batch in plan:
            self._run_batch(batch, run)
            self.stats.forward_passes += 1
            if progress:
                progress(len(batch))
        if self.on_gpu:
            torch.cuda.synchronize()
        self._note_memory()
        self._add_seconds("teacher_forced_seconds", time.perf_counter() - t0)
        return passed, logp


def _peak_rss() -> int | None:
    """This process's peak resident set in bytes. Linux's ``VmHWM`` first: ``ru_maxrss`` also
    counts the parent's resident set at the time of ``exec`` (a gate started by a big process)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
        import sys

        scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    except (ImportError, OSError):  # pragma: no cover
        return None


def _accepts_logits_to_keep(model: Any) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` (transformers' causal LMs do)."""
    import inspect

    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - a forward without a signature
        return False


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
