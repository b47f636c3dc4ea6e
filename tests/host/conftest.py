"""Shared device fixtures, one instance per test module: an emulated XDMA tree
(FUSE, golden device behind it; a mount costs ~0.3 s) and a `sim:` transport
(npu_top in Verilator; the build is cached, a start costs ~0.1 s)."""

from __future__ import annotations

import pytest

from presil.host.emulation import emulated_xdma, fuse_available
from presil.host.transport import open_transport


@pytest.fixture(scope="module")
def xdma_uri(tmp_path_factory):
    reason = fuse_available()
    if reason:
        pytest.skip(f"emulated XDMA needs FUSE: {reason}")
    with emulated_xdma(tmp_path_factory.mktemp("xdma")) as uri:
        yield uri


@pytest.fixture(scope="module")
def sim():
    t = open_transport("sim:")
    yield t
    t.close()
