"""Shared fixtures.

``demo_assets``: the tiny Llama with its two LoRA adapters, trained once per
test session by :mod:`adaptergate.demos.tinymodel` (the builder `adaptergate demo`
uses); the candidate was trained on data where refund answers were corrupted.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def demo_cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("agcache")


@pytest.fixture(scope="session")
def demo_assets(demo_cache_root):
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch

    torch.set_num_threads(1)
    from adaptergate.demos.tinymodel import CACHE_SUBDIR, build_demo_assets

    # where `adaptergate demo` looks when ADAPTERGATE_CACHE=demo_cache_root
    return build_demo_assets(demo_cache_root / CACHE_SUBDIR)
