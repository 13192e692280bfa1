"""``adaptergate parity``: does the serving engine answer as PEFT does?"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from adaptergate.cli.common import MAX_LINE_OPT, _console, _progress
from adaptergate.errors import ExitCode, UsageError

__all__ = ["parity", "register"]


def register(app: typer.Typer) -> None:
    app.command()(parity)


def parity(
    base_model: str = typer.Option(..., "--base-model", help="The base model's directory (PEFT runs here)."),
    adapter: Path = typer.Option(..., "--adapter", help="The LoRA adapter directory both backends answer with."),
    holdout: Path = typer.Option(..., "--holdout", help="The queries (a holdout JSONL)."),
    backend: str = typer.Option(..., "--backend", metavar="vllm|openai", help="The serving backend to check."),
    server_url: Optional[str] = typer.Option(None, "--server-url", help="--backend openai: the server's base URL."),
    server_api_key_env: Optional[str] = typer.Option(
        None, "--server-api-key-env", metavar="VAR", help="Environment variable holding the server's API key.",
    ),
    server_concurrency: Optional[int] = typer.Option(None, "--server-concurrency", min=1),
    tensor_parallel_size: Optional[int] = typer.Option(None, "--tensor-parallel-size", min=1),
    sample: Optional[int] = typer.Option(
        None, "--sample", min=1, metavar="N", help="Compare N queries (chosen by a hash of their ids) [default: all].",
    ),
    min_agreement: float = typer.Option(
        1.0, "--min-agreement", min=0.0, max=1.0,
        help="Exit 1 below this share of identical answers (1.0: every answer, as fp32 on both sides should give).",
    ),
    max_new_tokens: Optional[int] = typer.Option(
        None, "--max-new-tokens", min=1, help="Token budget [default: the longest gold answer + 1]."),
    stop: list[str] = typer.Option([], "--stop", help="Stop string (repeatable)."),
    chat_template: bool = typer.Option(False, "--chat-template", help="Wrap prompts in the tokenizer's chat template."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="float32, bfloat16 or float16 (default: bf16 on GPU)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: cuda when present)."),
    show: int = typer.Option(5, "--show", min=0, help="Differing queries shown side by side."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    max_line_bytes: int = MAX_LINE_OPT,
) -> None:
    """Answer the same queries with PEFT and a serving backend; report the share of identical answers.

    Exit 0 at or above --min-agreement, 1 below, 2 for bad input, 3 when a backend fails.
    """
    from adaptergate.backends.base import backend_names
    from adaptergate.holdout.store import load_holdout
    from adaptergate.scoring.model import ModelInputs, generation_settings
    from adaptergate.scoring.parity import run_parity

    if backend not in backend_names() or backend == "peft":
        raise UsageError(f"--backend must be a serving backend ({', '.join(n for n in backend_names() if n != 'peft')}),"
                         f" got {backend!r}")
    if backend == "openai" and not server_url:
        raise UsageError("--backend openai needs --server-url (an OpenAI-compatible server)")
    if backend != "openai" and (server_url or server_api_key_env or server_concurrency):
        raise UsageError("--server-url, --server-api-key-env and --server-concurrency go with --backend openai")
    data = load_holdout(holdout, max_line_bytes=max_line_bytes)
    inputs = ModelInputs(
        base_model=base_model, baseline_adapter=adapter, candidate_adapter=adapter, max_new_tokens=max_new_tokens,
        stop=tuple(stop), chat_template=chat_template, dtype=dtype, device=device, backend=backend,
        server_url=server_url, server_api_key_env=server_api_key_env, server_concurrency=server_concurrency,
        tensor_parallel_size=tensor_parallel_size,
    )
    with _progress(enabled=not as_json) as tick:
        result = run_parity(
            base_model, adapter, data.payloads, data.ids, backend=backend, settings=generation_settings(inputs),
            sample=sample, max_new_tokens=max_new_tokens, progress=tick,
        )
    ok = result.agreement >= min_agreement
    if as_json:
        doc = {**result.summary(shown=show), "min_agreement": min_agreement, "passed": ok}
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        _print(result, min_agreement, ok, show)
    raise typer.Exit(int(ExitCode.ACCEPTED if ok else ExitCode.REJECTED))


def _print(result, min_agreement: float, ok: bool, show: int) -> None:
    from adaptergate.trust import inert

    con = _console()

    def out(text: str) -> None:
        con.print(inert(text), markup=False, highlight=False)

    engine = result.engine
    what = engine.get("server") or f"vLLM {engine.get('version', '')}".strip()
    out(f"parity: {result.backend} ({what}, {engine.get('dtype') or 'default dtype'}) against PEFT")
    out(f"  {result.identical}/{result.queries} answers identical: agreement {result.agreement:.3f}"
        f" ({'at or above' if ok else 'BELOW'} --min-agreement {min_agreement:g})")
    for d in result.diffs[:show]:
        out(f"  query {d.query_id}: {d.prompt[:80]!r}")
        out(f"    peft:   {d.peft[:120]!r}")
        out(f"    served: {d.served[:120]!r}")
    if len(result.diffs) > show:
        out(f"  … and {len(result.diffs) - show} more differing queries (--show N, or --json)")
