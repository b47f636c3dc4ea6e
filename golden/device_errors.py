"""Errors the golden model reports: device errors (numbered like the hardware's
ERR_CODE register) and the host-side failures of program files and simulation."""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Same numbering as the hardware register ERR_CODE and rtl's err_code_e."""

    NONE = 0
    ILLEGAL_OPCODE = 1
    RESERVED_BITS = 2
    BAD_FIELD = 3
    DMA_WINDOW = 4
    DMA_BUS_ERROR = 5
    TOKEN_OVERFLOW = 6
    TOKEN_LEAK = 7
    CMD_OVERRUN = 8
    WATCHDOG = 9
    ABORTED = 10


# One-line meaning of each code, used by generated docs and error messages.
ERROR_DESCRIPTIONS: dict[ErrorCode, str] = {
    ErrorCode.NONE: "no error",
    ErrorCode.ILLEGAL_OPCODE: "instruction opcode not in the ISA",
    ErrorCode.RESERVED_BITS: "a reserved instruction bit is set",
    ErrorCode.BAD_FIELD: "a field is out of range or an SRAM access leaves the memory",
    ErrorCode.DMA_WINDOW: "a DMA access leaves the DMA window",
    ErrorCode.DMA_BUS_ERROR: "the bus answered a DMA access with an error",
    ErrorCode.TOKEN_OVERFLOW: "a dependency token counter was pushed beyond token_max",
    ErrorCode.TOKEN_LEAK: "a dependency token counter is not 0 at END",
    ErrorCode.CMD_OVERRUN: "the command fetcher ran past the program",
    ErrorCode.WATCHDOG: "the watchdog expired",
    ErrorCode.ABORTED: "the host aborted the program",
}


class IsaError(ValueError):
    """An instruction cannot be encoded or decoded; `code` is the device error the
    hardware would raise for the same word (ILLEGAL_OPCODE, RESERVED_BITS, BAD_FIELD)."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code = ErrorCode(code)


class DeviceError(RuntimeError):
    """An error the device raises while running a program."""

    def __init__(self, code: ErrorCode, pc: int | None, message: str, address: int | None = None):
        where = f" at pc {pc}" if pc is not None else ""
        addr = f", address 0x{address:x}" if address is not None else ""
        super().__init__(f"{ErrorCode(code).name}{where}{addr}: {message}")
        self.code = ErrorCode(code)
        self.pc = pc
        self.address = address
        self.detail = message


class ProgramFormatError(ValueError):
    """A program file is malformed; the message names what is wrong."""


class ProgramDeadlock(RuntimeError):
    """No engine can make progress and the program has not finished."""


class DataRace(RuntimeError):
    """Two instructions on different engines access an SRAM word without a
    happens-before order between them (at least one of them writes)."""
