"""Demos: the bundled examples and the tiny Llama built locally for `adaptergate demo`."""
