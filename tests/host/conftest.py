"""Shared device fixtures: an emulated XDMA tree (FUSE, golden device behind it),
mounted once per module because a mount costs ~0.3 s."""

from __future__ import annotations

import pytest

from presil.host.emulation import emulated_xdma, fuse_available


@pytest.fixture(scope="module")
def xdma_uri(tmp_path_factory):
    reason = fuse_available()
    if reason:
        pytest.skip(f"emulated XDMA needs FUSE: {reason}")
    with emulated_xdma(tmp_path_factory.mktemp("xdma")) as uri:
        yield uri
