"""Fake sysfs trees for tests: a PCI function directory with IDs, BARs, link
files and `resource0` as a regular file (mmap works on it as on a BAR, with
plain-memory semantics), plus the class/xdma link the xdma: transport follows."""

from __future__ import annotations

import os
from pathlib import Path

XILINX_VENDOR = 0x10EE
DEFAULT_DEVICE = 0x9038  # an XDMA Gen3 x8 endpoint ID
BAR0_SIZE = 64 << 10


def make_pci_function(root: str | os.PathLike, bdf: str = "0000:03:00.0", *, bar0_size: int = BAR0_SIZE,
                      bar0_image: bytes = b"", speed: str = "8.0 GT/s PCIe", width: str = "8",
                      max_speed: str | None = None, max_width: str | None = None, vendor: int = XILINX_VENDOR,
                      device: int = DEFAULT_DEVICE, xdma_node: str | None = None) -> Path:
    """Create <root>/bus/pci/devices/<bdf>/... and return that directory.
    xdma_node ('xdma0'): also <root>/class/xdma/<node>_user/device -> the function."""
    d = Path(root) / "bus" / "pci" / "devices" / bdf
    d.mkdir(parents=True, exist_ok=True)
    (d / "vendor").write_text(f"0x{vendor:04x}\n")
    (d / "device").write_text(f"0x{device:04x}\n")
    (d / "class").write_text("0x120000\n")  # processing accelerator
    (d / "current_link_speed").write_text(speed + "\n")
    (d / "current_link_width").write_text(width + "\n")
    (d / "max_link_speed").write_text((max_speed or speed) + "\n")
    (d / "max_link_width").write_text((max_width or width) + "\n")
    base = 0xF000_0000
    lines = [f"0x{base:016x} 0x{base + bar0_size - 1:016x} 0x0000000000040200"]
    lines += ["0x0000000000000000 0x0000000000000000 0x0000000000000000"] * 12
    (d / "resource").write_text("\n".join(lines) + "\n")
    with open(d / "resource0", "wb") as f:
        f.write(bar0_image[:bar0_size])
        f.truncate(bar0_size)
    (d / "reset").write_text("")
    if xdma_node:
        c = Path(root) / "class" / "xdma" / f"{xdma_node}_user"
        c.mkdir(parents=True, exist_ok=True)
        link = c / "device"
        if not link.exists():
            link.symlink_to(d)
    return d


def register_image(device=None, size: int = BAR0_SIZE) -> bytes:
    """A register BAR image holding what a fresh golden device reads (so the
    identity registers of a fake resource0 are right)."""
    from presil.host.regs import regmap_info
    from presil.host.transport.golden import GoldenDevice

    dev = device or GoldenDevice(mem_size=4096)
    img = bytearray(size)
    for reg in regmap_info.REGISTERS.values():
        if reg.access != "w":
            img[reg.offset: reg.offset + 4] = dev.read32(reg.offset).to_bytes(4, "little")
    return bytes(img)
