"""Shared helpers of the compiler tests: quantise a hand-made model once and
measure golden-IR vs onnxruntime agreement."""

from __future__ import annotations

import pytest

from agreement import Measured


@pytest.fixture(scope="session")
def measure():
    cache: dict = {}

    def get(name, builder, shape, **kw):
        if name not in cache:
            cache[name] = Measured(builder(), shape, **kw)
        return cache[name]
    return get
