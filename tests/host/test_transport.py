"""Transport conformance: the same expectations over golden:, an emulated
xdma: tree (real pread/pwrite/poll path through FUSE) and, for registers, pci:
over a fake sysfs tree."""

from __future__ import annotations

import os

import numpy as np
import pytest

from presil.host.emulation import emulated_pci
from presil.host.errors import TransportError
from presil.host.regs import regmap_info
from presil.host.transport import open_transport
from presil.host.transport.base import MAGIC_OFFSET
from presil.host.transport.sysfs import parse_speed, parse_width

SCRATCH = regmap_info.OFFSETS["SCRATCH"]


@pytest.fixture(params=["golden", "xdma"])
def transport(request):
    uri = "golden:?mem=4M" if request.param == "golden" else request.getfixturevalue("xdma_uri")
    t = open_transport(uri)
    yield t
    t.close()


def test_magic_offset_matches_regmap():
    assert MAGIC_OFFSET == regmap_info.OFFSETS["MAGIC"]


def test_registers_exact_32bit(transport):
    assert transport.read32(0) == regmap_info.MAGIC
    for v in (0, 1, 0xDEADBEEF, 0xFFFFFFFF):  # all ones in SCRATCH is not "dropped off the bus"
        transport.write32(SCRATCH, v)
        assert transport.read32(SCRATCH) == v
    with pytest.raises(TransportError, match="aligned"):
        transport.read32(SCRATCH + 2)
    with pytest.raises(TransportError):
        transport.write32(SCRATCH + 1, 0)
    with pytest.raises(TransportError):
        transport.write32(SCRATCH, 1 << 32)
    assert transport.read32(0x200) == 0  # unmapped reads 0


def test_dma_roundtrip_unaligned(transport):
    rng = np.random.default_rng(0)
    for off, n in ((0, 1), (3, 4097), (4093, 70000)):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        transport.dma_write(0x10000 + off, data)
        assert transport.dma_read(0x10000 + off, n) == data


def test_no_spurious_irq_and_info(transport):
    assert transport.wait_irq(0.02) is False
    info = transport.info()
    assert info["platform"] in ("golden-model", "fpga", "rtl-sim") and "uri" in info


def test_xdma_chunking_and_dropped(xdma_uri):
    t = open_transport(xdma_uri + "&chunk=4096")
    try:
        data = os.urandom(3 * 4096 + 5)
        t.dma_write(0x3001, data)
        assert t.dma_read(0x3001, len(data)) == data
        assert t.info()["link"]["current_width"] == 8 and t.info()["bdf"] == "0000:03:00.0"
    finally:
        t.close()


def test_pci_registers_only(tmp_path):
    with emulated_pci(tmp_path) as (uri, d):
        with open_transport(uri) as t:
            assert t.read32(0) == regmap_info.MAGIC
            t.write32(SCRATCH, 0x12345678)
            assert t.read32(SCRATCH) == 0x12345678
            with pytest.raises(TransportError, match="aligned"):
                t.read32(2)
            with pytest.raises(TransportError, match="no DMA"):
                t.dma_write(0, b"x")
            with pytest.raises(TransportError, match="no DMA"):
                t.dma_read(0, 1)
            info = t.info()
            assert info["ids"]["vendor"] == 0x10EE and info["bars"][0]["size"] == 64 << 10
            assert info["link"]["current_speed_gts"] == 8.0
        # the BAR file really changed: the write went through the mapping
        assert int.from_bytes((d / "resource0").read_bytes()[SCRATCH:SCRATCH + 4], "little") == 0x12345678


def test_pci_all_ones_is_dropped(tmp_path):
    from presil.host.errors import DeviceDropped

    with emulated_pci(tmp_path, bar0_size=4096) as (uri, d):
        (d / "resource0").write_bytes(b"\xff" * 4096)
        with open_transport(uri) as t:
            with pytest.raises(DeviceDropped, match="dropped off the bus"):
                t.read32(0x44)


@pytest.mark.parametrize("text,gts", [("8 GT/s", 8.0), ("8.0 GT/s PCIe", 8.0), ("2.5 GT/s", 2.5),
                                      ("16.0 GT/s PCIe", 16.0), ("Unknown", None)])
def test_link_speed_formats(text, gts):
    assert parse_speed(text) == gts


def test_link_width():
    assert parse_width("8") == 8 and parse_width("x16") == 16 and parse_width("") is None
