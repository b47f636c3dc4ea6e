"""The NPU driver: identify the device, manage its memory, load programs, move
tensors, run and wait, decode errors, read counters. Every register access goes
through the generated register layer (presil.host.regs), over whatever
Transport the URI names, so the same code drives the golden model, the RTL
simulation and a board."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from presil.golden.isa import INSTR_BYTES, isa_hash
from presil.golden.layout import pack_activation, unpack_activation
from presil.golden.program import Program, TensorDesc, TensorRole
from presil.host.alloc import DeviceMemory
from presil.host.errors import DeviceDropped, DeviceFault, DeviceTimeout, DeviceVersionMismatch, DmaWindowError
from presil.host.regs import NormalCallbackSet, npu_regs_cls, regmap_info
from presil.host.transport import Transport, open_transport

PERF_COUNTERS = ("FREE_CYCLES", "BUSY_CYCLES", "MAC_ACTIVE_CYCLES", "DMA_RD_BYTES", "DMA_WR_BYTES", "STALL_L2C",
                 "STALL_S2C", "STALL_C2L", "STALL_C2S", "STALL_DMA", "INSTR_RETIRED")
DEFAULT_MEM_SIZE = 64 << 20
WINDOW_ALIGN = 4096  # AXI bursts never cross 4 KiB: aligned windows keep tensors from straddling pages needlessly


@dataclass(frozen=True)
class DeviceIdentity:
    magic: int
    version: int
    isa_hash: int
    regmap_hash: int
    build_hash: int
    rows: int
    cols: int
    depths: dict[str, int]
    clock_hz: int

    @property
    def version_str(self) -> str:
        return f"{self.version >> 24}.{self.version >> 16 & 0xFF}.{self.version & 0xFFFF}"


@dataclass
class LoadedProgram:
    """A program resident in device memory: window [base, base + size), instructions at cmd_addr."""

    program: Program
    base: int
    size: int
    cmd_addr: int
    n_instr: int
    freed: bool = field(default=False, repr=False)

    def tensor(self, name: str) -> TensorDesc:
        return self.program.tensor(name)


def quantize(x: np.ndarray, desc: TensorDesc) -> np.ndarray:
    """float -> int8 with the tensor's scale and zero point (round half to even, as numpy)."""
    q = np.round(np.asarray(x, np.float64) / desc.scale) + desc.zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, desc: TensorDesc) -> np.ndarray:
    return (np.asarray(q, np.float32) - desc.zero_point) * np.float32(desc.scale)


class Device:
    """An opened NPU. Use Device.open(uri) (or env PRESIL_DEVICE)."""

    def __init__(self, transport: Transport, *, check: bool = True, reset: bool = True,
                 mem_base: int = 0, mem_size: int | None = None):
        self.transport = transport
        self.regs = npu_regs_cls(callbacks=NormalCallbackSet(
            read_callback=lambda addr, width, accesswidth: self._read32(addr),
            write_callback=lambda addr, width, accesswidth, data: transport.write32(addr, data)))
        self.identity = self.identify()
        if check:
            self.check_identity()
        if reset:
            self.soft_reset()
        size = mem_size or transport.info().get("mem_size") or DEFAULT_MEM_SIZE
        self.memory = DeviceMemory(mem_base, size - mem_base if mem_size is None else size)
        self._running: tuple | None = None

    @classmethod
    def open(cls, uri: str | Transport | None = None, **kw) -> "Device":
        t = uri if isinstance(uri, Transport) else open_transport(uri)
        try:
            return cls(t, **kw)
        except BaseException:
            t.close()
            raise

    def close(self) -> None:
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def platform(self) -> str:
        return self.transport.platform

    def _read32(self, addr: int) -> int:
        return self.transport.read32(addr)  # transports confirm an all-ones read against MAGIC

    # -- identity -----------------------------------------------------------------
    def identify(self) -> DeviceIdentity:
        r = self.regs
        arr = r.HW_ARRAY.read_fields()
        return DeviceIdentity(
            magic=r.MAGIC.read(), version=r.VERSION.read(), isa_hash=r.ISA_HASH.read(),
            regmap_hash=r.REGMAP_HASH.read(), build_hash=r.BUILD_HASH.read(), rows=arr["rows"], cols=arr["cols"],
            depths={"ACT": r.HW_ACT_DEPTH.read(), "WGT": r.HW_WGT_DEPTH.read(), "ACC": r.HW_ACC_DEPTH.read(),
                    "PAR": r.HW_PAR_DEPTH.read()},
            clock_hz=r.HW_CLOCK_HZ.read())

    def check_identity(self) -> None:
        """MAGIC, then VERSION (major must match), then the ISA and register-map hashes."""
        i = self.identity
        if i.magic != regmap_info.MAGIC:
            raise DeviceVersionMismatch("MAGIC", regmap_info.MAGIC, i.magic, "not a presil NPU, or a bad bus")
        if i.version >> 24 != regmap_info.VERSION_MAJOR:
            raise DeviceVersionMismatch("VERSION", regmap_info.VERSION, i.version,
                                        "register map major version differs")
        if i.isa_hash != isa_hash():
            raise DeviceVersionMismatch("ISA_HASH", isa_hash(), i.isa_hash,
                                        "the bitstream implements another golden/isa.toml")
        if i.regmap_hash != regmap_info.REGMAP_HASH:
            raise DeviceVersionMismatch("REGMAP_HASH", regmap_info.REGMAP_HASH, i.regmap_hash,
                                        "the bitstream was built from another npu_regs.rdl: regenerate or reflash")

    # -- control --------------------------------------------------------------------
    def soft_reset(self) -> None:
        self.regs.CTRL.write_fields(SOFT_RESET=1, ABORT=0)
        self._running = None

    def abort(self) -> None:
        self.regs.CTRL.write_fields(SOFT_RESET=0, ABORT=1)

    def regs_dump(self) -> dict[str, int]:
        """Every readable register, by name, through the register layer."""
        return {name: getattr(self.regs, name).read() for name, reg in regmap_info.REGISTERS.items()
                if reg.access != "w"}

    def read64(self, name: str) -> int:
        """A 64-bit counter: HI, LO, HI again until both HI reads agree (no torn value)."""
        hi_r, lo_r = getattr(self.regs, f"PERF_{name}_HI"), getattr(self.regs, f"PERF_{name}_LO")
        for _ in range(8):
            hi = hi_r.read()
            lo = lo_r.read()
            if hi_r.read() == hi:
                return hi << 32 | lo
        raise DeviceDropped(f"PERF_{name}: HI keeps changing between reads")

    def perf(self) -> dict[str, int]:
        return {name.lower(): self.read64(name) for name in PERF_COUNTERS}

    # -- programs ----------------------------------------------------------------------
    def check_program(self, program: Program) -> None:
        i = self.identity
        if (program.rows, program.cols) != (i.rows, i.cols):
            raise DeviceVersionMismatch("HW_ARRAY", program.rows | program.cols << 16, i.rows | i.cols << 16,
                                        f"program built for a {program.rows}x{program.cols} array, "
                                        f"device has {i.rows}x{i.cols}")
        for mem, need in program.depths.items():
            if need > i.depths[mem]:
                raise DeviceVersionMismatch(f"HW_{mem}_DEPTH", need, i.depths[mem],
                                            f"program needs {need} {mem} words, device has {i.depths[mem]}")
        if program.isa_hash != i.isa_hash:
            raise DeviceVersionMismatch("ISA_HASH", program.isa_hash, i.isa_hash, "program vs device")
        if program.regmap_hash and program.regmap_hash != i.regmap_hash:
            raise DeviceVersionMismatch("REGMAP_HASH", program.regmap_hash, i.regmap_hash, "program vs device")

    def load(self, program: Program) -> LoadedProgram:
        """Check the program against the device, allocate its window and
        instruction buffer, upload the constant blob and the instructions."""
        self.check_program(program)
        size = max(program.dram_size, 32)
        base = self.memory.alloc(size, WINDOW_ALIGN, "program window")
        try:
            cmd = self.memory.alloc(INSTR_BYTES * len(program.instructions), INSTR_BYTES, "instructions")
        except DmaWindowError:
            self.memory.free(base)
            raise
        if program.const:
            self.transport.dma_write(base + program.const_dram_offset, program.const)
        self.transport.dma_write(cmd, b"".join(program.instructions))
        return LoadedProgram(program, base, size, cmd, len(program.instructions))

    def unload(self, lp: LoadedProgram) -> None:
        if not lp.freed:
            self.memory.free(lp.base)
            self.memory.free(lp.cmd_addr)
            lp.freed = True

    def write_tensor(self, lp: LoadedProgram, name: str, x: np.ndarray) -> None:
        """int8 NHWC (the descriptor's shape) into the window, packed."""
        t = lp.tensor(name)
        x = np.asarray(x)
        if x.dtype != np.int8 or x.shape != tuple(t.shape):
            raise ValueError(f"tensor {name}: expected int8 {tuple(t.shape)}, got {x.dtype} {x.shape}"
                             " (use presil.host.driver.quantize for float data)")
        self.transport.dma_write(lp.base + t.dram_offset, pack_activation(x, lp.program.rows).tobytes())

    def read_tensor(self, lp: LoadedProgram, name: str) -> np.ndarray:
        t = lp.tensor(name)
        return unpack_activation(self.transport.dma_read(lp.base + t.dram_offset, t.size_bytes), t.shape,
                                 lp.program.rows)

    def submit(self, lp: LoadedProgram) -> None:
        self.start(lp.cmd_addr, lp.n_instr, lp.base, lp.size)

    def start(self, cmd_addr: int, n_instr: int, win_base: int, win_size: int) -> None:
        """Low level: window, command buffer, interrupt armed, doorbell (architecture §6)."""
        r = self.regs
        r.DMA_WIN_BASE.write(win_base)
        r.DMA_WIN_LIMIT.write(win_base + win_size)
        r.CMD_BASE.write(cmd_addr)
        r.CMD_LEN.write(n_instr)
        r.IRQ_STATUS.write(0b11)  # woclr: the whole register, both causes
        for _ in range(8):  # drop events left over from an earlier run (bounded: a level source may repeat)
            if not self.transport.wait_irq(0):
                break
        r.IRQ_ENABLE.write_fields(DONE=1, ERROR=1)
        self._running = (cmd_addr, n_instr, time.monotonic())
        r.DOORBELL.write(1)

    def wait(self, timeout: float = 10.0) -> float:
        """Until the running program ends; returns seconds waited. Error ->
        DeviceFault; timeout -> DeviceTimeout with a register dump, after
        recovering the device with SOFT_RESET."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            got = self.transport.wait_irq(max(0.0, deadline - time.monotonic()))
            st = self.regs.STATUS.read_fields()
            if st["DONE"] or st["ERROR"]:
                break
            if not got and time.monotonic() >= deadline:
                dump = self.regs_dump()
                code = dump["ERR_CODE"]
                recovered = self._recover()
                raise DeviceTimeout("program", timeout, dump, code, recovered)
        self.regs.IRQ_STATUS.write(0b11)
        self._running = None
        if st["ERROR"]:
            code, pc, addr = self.regs.ERR_CODE.read(), self.regs.ERR_PC.read(), self.regs.ERR_ADDR.read()
            raise DeviceFault(code, pc, addr)
        return time.monotonic() - t0

    def _recover(self, settle_s: float = 1.0) -> bool:
        """SOFT_RESET, then wait (bounded) for BUSY to drop: the hardware lets
        in-flight bus transfers finish before it clears."""
        self.soft_reset()
        deadline = time.monotonic() + settle_s
        while self.regs.STATUS.read_fields()["BUSY"]:
            if time.monotonic() > deadline:
                return False
        return True

    def run(self, lp: LoadedProgram, inputs: dict[str, np.ndarray] | None = None,
            timeout: float = 10.0) -> dict[str, np.ndarray]:
        """Write inputs, run, return every OUTPUT tensor (int8 NHWC)."""
        for name, x in (inputs or {}).items():
            self.write_tensor(lp, name, x)
        self.submit(lp)
        self.wait(timeout)
        return {t.name: self.read_tensor(lp, t.name) for t in lp.program.tensors if t.role == TensorRole.OUTPUT}

    def run_raw(self, instructions: list[bytes], win_base: int, win_size: int, timeout: float = 10.0) -> None:
        """Run instruction words that no Program describes (bring-up negative tests)."""
        cmd = self.memory.alloc(INSTR_BYTES * len(instructions), INSTR_BYTES, "instructions")
        try:
            self.transport.dma_write(cmd, b"".join(instructions))
            self.start(cmd, len(instructions), win_base, win_size)
            self.wait(timeout)
        finally:
            self.memory.free(cmd)
