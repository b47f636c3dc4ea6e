"""`pci:0000:03:00.0` — registers through sysfs without a vendor driver: BAR0
(`resource0`) mmapped, exact 32-bit accesses through memoryview(...).cast("I")
(slicing an mmap can split or widen bus accesses). No DMA and no interrupt
line: wait_irq polls IRQ_STATUS & IRQ_ENABLE. For DMA use xdma: (or VFIO)."""

from __future__ import annotations

import mmap
import os
import re
import time

from presil.host.errors import BadDeviceURI, DeviceNotFound, DevicePermissionError, TransportError
from presil.host.regs import regmap_info
from presil.host.transport import sysfs
from presil.host.transport.base import Transport, int_param, no_extra_params, split_uri

_BDF = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")


class PciTransport(Transport):
    platform = "fpga"
    has_dma = False

    def __init__(self, bdf: str, *, bar: int = 0, sysfs_root: str | None = None, uri: str | None = None):
        if not _BDF.match(bdf):
            raise BadDeviceURI(f"pci: {bdf!r} is not a PCI address like 0000:03:00.0")
        self.bdf, self.bar, self.root, self.uri = bdf, bar, sysfs_root, uri or f"pci:{bdf}"
        d = sysfs.pci_dir(bdf, sysfs_root)
        if not os.path.isdir(d):
            raise DeviceNotFound(f"{d}: no such PCI function (see `lspci -D`)")
        path = os.path.join(d, f"resource{bar}")
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_SYNC | os.O_CLOEXEC)
        except FileNotFoundError:
            raise DeviceNotFound(f"{path}: BAR{bar} does not exist or is not memory-mapped") from None
        except PermissionError:
            raise DevicePermissionError(f"{path}: permission denied (needs root, or a udev rule)") from None
        try:
            size = os.fstat(self._fd).st_size
            self._map = mmap.mmap(self._fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except (OSError, ValueError) as e:
            os.close(self._fd)
            raise DevicePermissionError(f"{path}: mmap refused ({e}); kernel lockdown, or a driver has "
                                        "claimed the region") from None
        self._words = memoryview(self._map).cast("I")

    @classmethod
    def from_uri(cls, uri: str) -> "PciTransport":
        _, rest, p = split_uri(uri)
        kw = dict(bar=int_param(p, "bar", 0, uri), sysfs_root=p.pop("sysfs", None))
        no_extra_params(p, uri)
        return cls(rest, uri=uri, **kw)

    def _index(self, addr: int) -> int:
        self.check_reg(addr)
        if addr + 4 > len(self._map):
            raise TransportError(f"register 0x{addr:x} beyond BAR{self.bar} ({len(self._map):#x} bytes)")
        return addr // 4

    def read32(self, addr: int) -> int:
        return self.confirm_alive(addr, self._raw_read32(addr))

    def _raw_read32(self, addr: int) -> int:
        return self._words[self._index(addr)]

    def write32(self, addr: int, value: int) -> None:
        i = self._index(addr)
        self.check_reg(addr, value)
        self._words[i] = value

    def dma_write(self, dev_addr: int, data) -> None:
        raise TransportError("the pci: transport has no DMA (BAR access only); use xdma: for device memory")

    def dma_read(self, dev_addr: int, n: int) -> bytes:
        raise TransportError("the pci: transport has no DMA (BAR access only); use xdma: for device memory")

    def wait_irq(self, timeout_s: float) -> bool:
        # No MSI without a kernel driver (VFIO): poll the interrupt line's inputs instead.
        st, en = regmap_info.OFFSETS["IRQ_STATUS"], regmap_info.OFFSETS["IRQ_ENABLE"]
        deadline = time.monotonic() + timeout_s
        while True:
            if self.read32(st) & self.read32(en):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.0005)

    def info(self) -> dict:
        return {"platform": self.platform, "uri": self.uri, "bdf": self.bdf,
                "link": sysfs.link_info(self.bdf, self.root), "ids": sysfs.ids(self.bdf, self.root),
                "bars": sysfs.bars(self.bdf, self.root)}

    def close(self) -> None:
        if getattr(self, "_map", None) is not None:
            self._words.release()
            self._map.close()
            os.close(self._fd)
            self._map = None
