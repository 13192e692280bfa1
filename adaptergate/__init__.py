"""adaptergate: gate per-tenant LoRA adapter promotion on held-out queries.

``import adaptergate`` stays light: the ML stack (torch, transformers, peft)
is imported only by the model runner, when a gate actually loads a model.
"""

from __future__ import annotations

__version__ = "1.0.0.dev0"

__all__ = ["__version__"]
