"""`golden:` — the NPU's register map and command processor modelled in Python
over a device-memory bytearray, executing programs with the golden ISS. It lets
the driver, the runtime and bring-up run for real without hardware, and it is
the device behind the emulated XDMA tree (presil.host.emulation)."""

from __future__ import annotations

import threading
import time

import numpy as np

from presil.golden.device_errors import DataRace, DeviceError, ErrorCode, ProgramDeadlock
from presil.golden.isa import INSTR_BYTES, ISA, isa_hash
from presil.golden.iss import execute
from presil.host.errors import DmaWindowError
from presil.host.regs import regmap_info
from presil.host.transport.base import Transport, int_param, no_extra_params, split_uri

_OFF = regmap_info.OFFSETS
_BY_OFF = {r.offset: r for r in regmap_info.REGISTERS.values()}
_END_OPCODE = ISA.by_name["END"].opcode
# Software-written registers (plain storage) and the bits that exist in each.
_RW = {"SCRATCH": 0xFFFFFFFF, "CMD_BASE": 0xFFFFFFFF, "CMD_LEN": 0xFFFFFFFF, "IRQ_ENABLE": 0x3,
       "WATCHDOG": 0xFFFFFFFF, "DMA_WIN_BASE": 0xFFFFFFFF, "DMA_WIN_LIMIT": 0xFFFFFFFF}
_PERF = ("BUSY_CYCLES", "MAC_ACTIVE_CYCLES", "DMA_RD_BYTES", "DMA_WR_BYTES", "STALL_L2C", "STALL_S2C",
         "STALL_C2L", "STALL_C2S", "STALL_DMA", "INSTR_RETIRED")
BUSY, DONE, ERROR = 1 << 0, 1 << 1, 1 << 2
IRQ_DONE, IRQ_ERROR = 1 << 0, 1 << 1
DEFAULT_MEM = 64 << 20
DEFAULT_CLOCK_HZ = 250_000_000


class GoldenDevice:
    """One NPU: registers, device memory, a command processor thread.

    Identity values can be overridden (magic=, isa_hash=, ...) to test the
    driver's checks; hang=True makes every program hang (BUSY, no interrupt)
    until SOFT_RESET, ABORT or the WATCHDOG, to test timeouts.

    Register-level limits (tests/host/test_device_parity.py compares these with
    the RTL by rule): STATUS.LOAD/COMPUTE/STORE_BUSY are never set; STATUS_PC
    is 0 while a program runs, END's index + 1 after DONE, ERR_PC after an error;
    the PERF_* counts (but FREE_CYCLES) come from a completed ISS run, so they
    read 0 while BUSY and after an error; ERR_PC is 0 for ABORTED and WATCHDOG
    (not defined by the register map)."""

    def __init__(self, mem_size: int = DEFAULT_MEM, *, rows: int = 16, cols: int = 16, depths=None,
                 clock_hz: int = DEFAULT_CLOCK_HZ, magic: int | None = None, version: int | None = None,
                 isa_hash_value: int | None = None, regmap_hash: int | None = None, build_hash: int = 0,
                 hang: bool = False, check_races: bool = False):
        self.mem = bytearray(mem_size)  # calloc'd: untouched pages cost nothing
        self._np = np.frombuffer(self.mem, np.uint8)
        self.rows, self.cols = rows, cols
        self.depths = {m: s.default_depth for m, s in ISA.memories.items()} | dict(depths or {})
        self.clock_hz = clock_hz
        self.hang, self.check_races = hang, check_races
        self.ids = {
            "MAGIC": regmap_info.MAGIC if magic is None else magic,
            "VERSION": regmap_info.VERSION if version is None else version,
            "ISA_HASH": isa_hash() if isa_hash_value is None else isa_hash_value,
            "REGMAP_HASH": regmap_info.REGMAP_HASH if regmap_hash is None else regmap_hash,
            "BUILD_HASH": build_hash,
            "HW_ARRAY": rows | cols << 16,
            "HW_ACT_DEPTH": self.depths["ACT"], "HW_WGT_DEPTH": self.depths["WGT"],
            "HW_ACC_DEPTH": self.depths["ACC"], "HW_PAR_DEPTH": self.depths["PAR"],
            "HW_CLOCK_HZ": clock_hz,
        }
        self.cond = threading.Condition(threading.RLock())
        self.irq_listeners: list = []  # called (under the lock) on each rising edge of the line
        self._t0 = time.monotonic_ns()
        self.power_on_reset()

    # -- reset ------------------------------------------------------------------
    def power_on_reset(self) -> None:
        with self.cond:
            self.sw = dict.fromkeys(_RW, 0)
            # The PERF_* counters (but FREE_CYCLES) reset at power-on and at DOORBELL only: CTRL.SOFT_RESET
            # is not among their reset events (npu_regs.rdl), and its own list of what it clears omits them.
            self.perf = dict.fromkeys(_PERF, 0)
            self._soft_reset()
            self.irq_events = 0

    def _soft_reset(self) -> None:
        self._gen = getattr(self, "_gen", 0) + 1  # a running worker's result is dropped
        abort = getattr(self, "_abort", None)
        if abort is not None:
            abort.set()
        self._abort = threading.Event()
        self.status, self.status_pc, self.irq_status = 0, 0, 0
        self.err_code = self.err_addr = self.err_pc = 0
        self._line = False

    # -- registers ----------------------------------------------------------------
    def free_cycles(self) -> int:
        return (time.monotonic_ns() - self._t0) * self.clock_hz // 1_000_000_000 & (1 << 64) - 1

    def read32(self, addr: int) -> int:
        reg = _BY_OFF.get(addr)
        if reg is None or reg.access == "w":
            return 0  # unmapped and write-only registers read 0 (the regblock's rule)
        n = reg.name
        with self.cond:
            if n in self.ids:
                return self.ids[n] & 0xFFFFFFFF
            if n in self.sw:
                return self.sw[n]
            if n.startswith("PERF_"):
                base, half = n[5:-3], n[-2:]
                v = self.free_cycles() if base == "FREE_CYCLES" else self.perf[base]
                return (v >> 32 if half == "HI" else v) & 0xFFFFFFFF
            return {"STATUS": self.status, "STATUS_PC": self.status_pc, "IRQ_STATUS": self.irq_status,
                    "ERR_CODE": self.err_code, "ERR_ADDR": self.err_addr, "ERR_PC": self.err_pc}[n]

    def write32(self, addr: int, value: int) -> None:
        reg = _BY_OFF.get(addr)
        if reg is None or reg.access == "r":
            return
        n = reg.name
        with self.cond:
            if n in self.sw:
                self.sw[n] = value & _RW[n]
            elif n == "IRQ_STATUS":
                self.irq_status &= ~value  # write 1 to clear
            elif n == "CTRL":
                if value & 1:
                    self._soft_reset()
                if value & 2 and self.status & BUSY:
                    self._abort.set()
            elif n == "DOORBELL":
                self._doorbell()
            self._update_line()

    def _update_line(self) -> None:
        line = bool(self.irq_status & self.sw["IRQ_ENABLE"])
        if line and not self._line:  # an MSI-like edge: one event per rising edge
            self.irq_events += 1
            self.cond.notify_all()
            for f in self.irq_listeners:
                f()
        self._line = line

    def take_irq_events(self, timeout_s: float | None) -> int:
        """Block until an interrupt edge is pending; return and clear the count."""
        with self.cond:
            self.cond.wait_for(lambda: self.irq_events > 0, timeout_s)
            n, self.irq_events = self.irq_events, 0
            return n

    # -- device memory --------------------------------------------------------------
    def _span(self, addr: int, n: int) -> None:
        if addr < 0 or n < 0 or addr + n > len(self.mem):
            raise DmaWindowError(f"device memory access [0x{addr:x}, 0x{addr + n:x}) outside the "
                                 f"{len(self.mem):#x}-byte device memory")

    def dma_write(self, addr: int, data) -> None:
        mv = memoryview(data).cast("B")
        self._span(addr, mv.nbytes)
        self.mem[addr: addr + mv.nbytes] = mv

    def dma_read(self, addr: int, n: int) -> bytes:
        self._span(addr, n)
        return bytes(self.mem[addr: addr + n])

    # -- command processor -------------------------------------------------------------
    def _doorbell(self) -> None:
        if self.status & BUSY:
            return  # the RTL ignores a doorbell while busy
        self.status = BUSY
        self.status_pc = self.err_code = self.err_addr = self.err_pc = 0
        self.perf = dict.fromkeys(_PERF, 0)
        args = (self._gen, self._abort, self.sw["CMD_BASE"] & ~(INSTR_BYTES - 1), self.sw["CMD_LEN"], self.sw["DMA_WIN_BASE"],
                self.sw["DMA_WIN_LIMIT"], self.sw["WATCHDOG"])
        threading.Thread(target=self._run, args=args, name="golden-npu", daemon=True).start()

    def _run(self, gen, abort, cmd_base, cmd_len, win_base, win_limit, watchdog) -> None:
        result = err = None
        try:
            instrs = self._fetch(cmd_base, cmd_len)
            if self.hang:
                raise ProgramDeadlock("hang injected by the device model (hang=True)")
            win = self._np[win_base: max(win_base, min(win_limit, len(self.mem)))]
            try:
                result = execute(instrs, win, self.rows, self.cols, self.depths, check_races=self.check_races)
            except DeviceError as e:
                if e.code == ErrorCode.DMA_WINDOW and e.address is not None:
                    # the ISS reports window offsets; beyond the real memory it is a bus error
                    code = ErrorCode.DMA_BUS_ERROR if win_base + e.address < win_limit else e.code
                    e = DeviceError(code, e.pc, e.detail, win_base + e.address)
                raise e
        except DeviceError as e:
            err = e
        except (ProgramDeadlock, DataRace):
            # Real engines would wait forever: stay BUSY until abort, reset or watchdog.
            fired = abort.wait(watchdog / self.clock_hz if watchdog else None)
            err = DeviceError(ErrorCode.ABORTED if fired else ErrorCode.WATCHDOG, 0, "program hung")
        with self.cond:
            if gen != self._gen:
                return  # SOFT_RESET happened meanwhile
            if abort.is_set() and err is None:
                err = DeviceError(ErrorCode.ABORTED, len(instrs) - 1, "aborted by the host")
            if result is not None:
                self.perf.update(BUSY_CYCLES=result.cycles, MAC_ACTIVE_CYCLES=result.mac_active,
                                 DMA_RD_BYTES=result.dma_bytes_read, DMA_WR_BYTES=result.dma_bytes_written,
                                 INSTR_RETIRED=len(instrs))
            if err is None:
                self.status, self.status_pc = DONE, len(instrs)   # the dispatcher has taken END
                self.irq_status |= IRQ_DONE
            else:
                self.status, self.status_pc = ERROR, err.pc or 0
                self.err_code, self.err_pc = int(err.code), err.pc or 0
                self.err_addr = err.address if err.address is not None and err.code in (
                    ErrorCode.DMA_WINDOW, ErrorCode.DMA_BUS_ERROR) else 0
                self.irq_status |= IRQ_ERROR
            self._update_line()
            self.cond.notify_all()

    def _fetch(self, base: int, n: int) -> list[bytes]:
        """Instructions up to and including the first END (the fetcher stops there)."""
        out = []
        for pc in range(n):
            a = base + pc * INSTR_BYTES
            if a + INSTR_BYTES > len(self.mem):
                raise DeviceError(ErrorCode.DMA_BUS_ERROR, pc, "instruction fetch beyond device memory", a)
            raw = bytes(self.mem[a: a + INSTR_BYTES])
            out.append(raw)
            if raw[0] == _END_OPCODE:
                return out
        # Limit of the model: nothing before the overrun executes (the RTL runs them first).
        raise DeviceError(ErrorCode.CMD_OVERRUN, n, f"{n} instructions fetched without an END")


class GoldenTransport(Transport):
    """The golden device model in this process."""

    platform = "golden-model"

    def __init__(self, device: GoldenDevice | None = None, uri: str = "golden:"):
        self.device = device or GoldenDevice()
        self.uri = uri

    @classmethod
    def from_uri(cls, uri: str) -> "GoldenTransport":
        _, rest, p = split_uri(uri)
        kw = {"mem_size": int_param(p, "mem", DEFAULT_MEM, uri), "rows": int_param(p, "rows", 16, uri),
              "cols": int_param(p, "cols", 16, uri), "clock_hz": int_param(p, "clock_hz", DEFAULT_CLOCK_HZ, uri),
              "magic": int_param(p, "magic", None, uri), "version": int_param(p, "version", None, uri),
              "isa_hash_value": int_param(p, "isa_hash", None, uri),
              "regmap_hash": int_param(p, "regmap_hash", None, uri), "hang": bool(int_param(p, "hang", 0, uri))}
        no_extra_params(p, uri)
        if rest:
            from presil.host.errors import BadDeviceURI

            raise BadDeviceURI(f"device URI {uri!r}: golden: takes only ?parameters, not a path ({rest!r})")
        return cls(GoldenDevice(**kw), uri)

    def read32(self, addr: int) -> int:
        self.check_reg(addr)
        return self.device.read32(addr)

    def write32(self, addr: int, value: int) -> None:
        self.check_reg(addr, value)
        self.device.write32(addr, value)

    def dma_write(self, dev_addr: int, data) -> None:
        self.device.dma_write(dev_addr, data)

    def dma_read(self, dev_addr: int, n: int) -> bytes:
        return self.device.dma_read(dev_addr, n)

    def wait_irq(self, timeout_s: float) -> bool:
        return self.device.take_irq_events(timeout_s) > 0

    def reset(self) -> bool:
        self.device.power_on_reset()
        return True

    def info(self) -> dict:
        return {"platform": self.platform, "uri": self.uri, "bdf": None, "link": None,
                "mem_size": len(self.device.mem)}
