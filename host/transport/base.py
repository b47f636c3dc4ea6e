"""The one interface every device backend implements. The driver sees only this:
32-bit register accesses, DMA to and from device memory, an interrupt wait and a
reset. A new platform (the RTL co-simulation `sim:`, a board) is one new
subclass; nothing above it changes."""

from __future__ import annotations

import abc
from urllib.parse import parse_qsl

from presil.host.errors import BadDeviceURI, DeviceDropped, TransportError

MAGIC_OFFSET = 0x000  # checked against regmap_info by the tests

PLATFORMS = ("golden-model", "rtl-sim", "fpga", "silicon")


class Transport(abc.ABC):
    """A device reached some way. Register accesses are exact 32-bit accesses at
    byte offsets of the register BAR: never split, never widened; a misaligned
    offset is an error rather than something silently rounded."""

    #: what executes the program (kept apart from the NPU architecture, which
    #: the device's ID registers report)
    platform: str = ""
    #: whether dma_write/dma_read work (a bare BAR mapping has none)
    has_dma: bool = True

    # -- registers ------------------------------------------------------------
    @abc.abstractmethod
    def read32(self, addr: int) -> int: ...

    @abc.abstractmethod
    def write32(self, addr: int, value: int) -> None: ...

    # -- device memory ----------------------------------------------------------
    @abc.abstractmethod
    def dma_write(self, dev_addr: int, data: bytes | bytearray | memoryview) -> None: ...

    @abc.abstractmethod
    def dma_read(self, dev_addr: int, n: int) -> bytes: ...

    # -- interrupt, reset, identity -------------------------------------------
    @abc.abstractmethod
    def wait_irq(self, timeout_s: float) -> bool:
        """True once an interrupt was delivered since the last call that returned
        True (consumes it, like a read of an XDMA event node); False on timeout."""

    def reset(self) -> bool:
        """Hard (power-on-like) reset if this transport can do one; returns
        whether it did. Register-level SOFT_RESET is the driver's business."""
        return False

    @abc.abstractmethod
    def info(self) -> dict:
        """{'platform', 'uri', 'bdf', 'link': {...} | None, ...}: where the device is,
        never what it is (that is in its ID registers)."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- helpers for subclasses -------------------------------------------------
    def confirm_alive(self, addr: int, value: int) -> int:
        """All ones is what a PCIe read gets from a device that is gone. SCRATCH
        and counters may hold it legitimately, so confirm with MAGIC."""
        if value == 0xFFFFFFFF and self._raw_read32(MAGIC_OFFSET) == 0xFFFFFFFF:
            raise DeviceDropped(f"{self.info().get('uri')}: register 0x{addr:03x} and MAGIC read 0xffffffff — "
                                "the device dropped off the bus (link down, FPGA reconfigured); check `lspci -vv`")
        return value

    def _raw_read32(self, addr: int) -> int:
        raise NotImplementedError

    @staticmethod
    def check_reg(addr: int, value: int | None = None) -> None:
        if addr < 0 or addr % 4:
            raise TransportError(f"register offset 0x{addr:x} is not 32-bit aligned: accesses are exactly 32 bits")
        if value is not None and not 0 <= value < 1 << 32:
            raise TransportError(f"register value {value:#x} does not fit 32 bits")


def split_uri(uri: str) -> tuple[str, str, dict[str, str]]:
    """'scheme:rest?k=v&..' -> (scheme, rest, params)."""
    if not isinstance(uri, str) or ":" not in uri:
        raise BadDeviceURI(f"device URI {uri!r} has no scheme; expected golden:, xdma:/dev/xdma0, "
                           "pci:0000:03:00.0 or sim:PATH")
    scheme, rest = uri.split(":", 1)
    rest, _, query = rest.partition("?")
    try:
        params = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise BadDeviceURI(f"device URI {uri!r}: malformed parameters {query!r}") from None
    return scheme.lower(), rest, params


def int_param(params: dict[str, str], key: str, default: int | None, uri: str) -> int | None:
    """Integer URI parameter; accepts 0x.., and K/M/G suffixes for sizes."""
    if key not in params:
        return default
    s = params.pop(key).strip()
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(s[-1:].lower(), 1)
    try:
        return int(s[:-1] if mult > 1 else s, 0) * mult
    except ValueError:
        raise BadDeviceURI(f"device URI {uri!r}: parameter {key}={s!r} is not an integer") from None


def no_extra_params(params: dict[str, str], uri: str) -> None:
    if params:
        raise BadDeviceURI(f"device URI {uri!r}: unknown parameter(s) {', '.join(sorted(params))}")
