"""Named errors of the host stack. Every failure a user can meet while reaching
or driving a device has its own class, and the message says what was expected,
what was found and where, so a bring-up log is enough to diagnose it."""

from __future__ import annotations


class HostError(RuntimeError):
    """Base of every error raised by presil.host's driver and transports."""


class BadDeviceURI(HostError, ValueError):
    """A device URI that no transport understands (or with bad parameters)."""


class DeviceNotFound(HostError):
    """The device (node, sysfs entry, socket) does not exist."""


class DevicePermissionError(HostError, PermissionError):
    """The device exists but this process may not open it."""


class DeviceDropped(HostError):
    """A register read returned 0xffffffff: the device fell off the bus
    (link down, FPGA reprogrammed, surprise removal)."""


class TransportError(HostError):
    """A transport-level failure: short access, misaligned register, no DMA."""


class DmaWindowError(HostError):
    """Device memory the host asked for is outside what exists or what the
    allocator can give (also: a program larger than the free device memory)."""


class DeviceVersionMismatch(HostError):
    """The device is not the one this package was built for. `field` is one of
    MAGIC, VERSION, ISA_HASH, REGMAP_HASH, or an HW_* parameter."""

    def __init__(self, field: str, expected: int, found: int, hint: str = ""):
        self.field, self.expected, self.found = field, expected, found
        msg = f"{field} mismatch: expected 0x{expected:08x}, device reports 0x{found:08x}"
        super().__init__(msg + (f" ({hint})" if hint else ""))


def _err_name(code: int) -> str:
    from presil.host.regs import regmap_info

    try:
        return regmap_info.ErrCode(code).name
    except ValueError:
        return f"UNKNOWN({code})"


class DeviceFault(HostError):
    """The device stopped a program on an error: ERR_CODE decoded by name,
    ERR_PC (instruction index) and ERR_ADDR (device byte address, DMA errors)."""

    def __init__(self, code: int, pc: int, address: int, detail: str = ""):
        self.code, self.pc, self.address = int(code), int(pc), int(address)
        self.name = _err_name(self.code)
        msg = f"device fault {self.name} (ERR_CODE {self.code}) at instruction {self.pc}, ERR_ADDR 0x{self.address:08x}"
        super().__init__(msg + (f": {detail}" if detail else ""))


class DeviceTimeout(HostError):
    """A program did not finish in time. Carries the full register dump taken at
    the timeout and the ERR_CODE read then (usually NONE: the device was still
    busy); `recovered` tells whether the driver's SOFT_RESET brought it back."""

    def __init__(self, what: str, timeout_s: float, dump: dict[str, int], err_code: int, recovered: bool = False):
        self.timeout_s, self.dump, self.err_code, self.recovered = timeout_s, dict(dump), int(err_code), recovered
        self.err_name = _err_name(self.err_code)
        regs = ", ".join(f"{k}=0x{v:08x}" for k, v in self.dump.items() if k in _TIMEOUT_KEYS)
        super().__init__(f"{what}: no completion after {timeout_s:g} s; ERR_CODE {self.err_name}; {regs}"
                         f"{'; recovered by SOFT_RESET' if recovered else ''}")


# Registers worth seeing in the one-line message (the full dump is on .dump).
_TIMEOUT_KEYS = ("STATUS", "STATUS_PC", "CMD_BASE", "CMD_LEN", "IRQ_STATUS", "IRQ_ENABLE", "ERR_CODE", "ERR_PC",
                 "ERR_ADDR")
