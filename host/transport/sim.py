"""`sim:` — npu_top running in Verilator behind an emulation of the board's
PCIe bridge (rtl/sim/cosim_main.cpp), driven by the same driver as a board.

    sim:[?latency=N&rd_latency=N&wr_latency=N&stall=P&seed=N&bridge=N&waves=fst&wavefile=PATH&timeout=S]
        start a private simulator (built on first use, cached), talk to it over
        a Unix socket (mode 0600 in a private 0700 temp dir), stop it on close
    sim:/path/to/socket[?timeout=S]
        attach to a simulator someone started (`cosim --socket PATH --persist`)

latency: device-memory read/write latency in cycles; stall: probability per
cycle that the memory withholds a ready/valid (seeded, reproducible); bridge: idle
cycles the emulated PCIe bridge adds before each register access (default 16,
80 ns at 200 MHz); waves=fst:
the tracing build, writing wavefile (default ./presil-sim-<pid>.fst).

Protocol (version PROTOCOL): frames `u32 len, u32 op|status, payload`, all
little-endian. HELLO(proto, REGMAP_HASH, ISA_HASH) first — the simulator
refuses a mismatch with a message; READ32/WRITE32 (the harness drives the
AXI4-Lite port cycle by cycle); DMA_WRITE/DMA_READ (memcpy into the C++ memory
model, one frame per transfer); WAIT_IRQ(max cycles, wall ms) -> events
consumed; RESET; INFO; RUN(cycles); MEM_CONFIG; SHUTDOWN. Time model: see
cosim_main.cpp — simulated time advances for register accesses (bridge
latency + AXI4-Lite handshake), IRQ waits,
and in the background while the NPU is BUSY; DMA costs no cycles; an idle
simulator sleeps.

Failures are named: the process dying -> SimulatorCrashed (exit code, log tail);
no answer in time -> DeviceTimeout (and the simulator is killed); a handshake
refused -> SimHandshakeRefused. The driver never hangs on the simulator.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref

from presil.golden.isa import isa_hash
from presil.host.errors import (BadDeviceURI, DeviceNotFound, DeviceTimeout, DeviceVersionMismatch,
                                DmaWindowError, HostError, TransportError)
from presil.host.regs import regmap_info
from presil.host.transport.base import Transport, int_param, no_extra_params, split_uri

PROTOCOL = 1
HELLO, READ32, WRITE32, DMA_WRITE, DMA_READ, WAIT_IRQ, RESET, INFO, SHUTDOWN, RUN, MEM_CONFIG = range(1, 12)
OK, ERR_PROTOCOL, ERR_MISMATCH, ERR_RANGE, ERR_BUS = range(5)
_OP_NAMES = {v: k for k, v in dict(HELLO=HELLO, READ32=READ32, WRITE32=WRITE32, DMA_WRITE=DMA_WRITE,
                                     DMA_READ=DMA_READ, WAIT_IRQ=WAIT_IRQ, RESET=RESET, INFO=INFO,
                                     SHUTDOWN=SHUTDOWN, RUN=RUN, MEM_CONFIG=MEM_CONFIG).items()}
_HELLO_REPLY = struct.Struct("<IIIIIIQQIIIIIQ")
_INFO_REPLY = struct.Struct("<7Q")
LOG_TAIL_LINES = 30


class SimulatorCrashed(HostError):
    """The simulator process died (or closed the connection) under the driver.
    `exit_code` is its return code (negative: killed by that signal; None when
    attached to a simulator this process did not start), `log_tail` its last
    output lines."""

    def __init__(self, what: str, exit_code: int | None, log_tail: str):
        self.exit_code, self.log_tail = exit_code, log_tail
        how = ("exit code unknown (attached)" if exit_code is None else
               f"killed by {signal.Signals(-exit_code).name}" if exit_code < 0 else f"exit code {exit_code}")
        super().__init__(f"RTL simulator crashed during {what} ({how}); last log lines:\n{log_tail or '(empty log)'}")


class SimHandshakeRefused(DeviceVersionMismatch):
    """The simulator speaks another protocol version or was built from another
    register map / ISA than this package."""

    def __init__(self, message: str):
        self.field, self.expected, self.found = "HANDSHAKE", None, None
        HostError.__init__(self, f"sim: handshake refused: {message}")


def _tail(path: str | None) -> str:
    if not path:
        return ""
    try:
        with open(path, errors="replace") as f:
            return "\n".join(f.read().splitlines()[-LOG_TAIL_LINES:])
    except OSError:
        return ""


def _cleanup(proc: subprocess.Popen | None, tmpdir: str | None) -> None:
    """Last resort (garbage collection, interpreter exit): never leave a simulator behind."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
    if tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)


class SimTransport(Transport):
    platform = "rtl-sim"

    def __init__(self, socket_path: str | None = None, *, rd_latency: int = 1, wr_latency: int = 1,
                 stall: float = 0.0, seed: int = 1, bridge_cycles: int = 16, waves: str | None = None, wavefile: str | None = None,
                 io_timeout: float = 60.0, start_timeout: float = 60.0, shutdown_timeout: float = 10.0,
                 uri: str = "sim:", expect: tuple[int, int] | None = None, protocol: int = PROTOCOL,
                 progress=None):
        self.uri, self.io_timeout, self.shutdown_timeout = uri, io_timeout, shutdown_timeout
        self.proc: subprocess.Popen | None = None
        self.tmpdir: str | None = None
        self.log_path: str | None = None
        self.wavefile: str | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._broken: str | None = None
        self._hello = None
        try:
            if socket_path is None:
                self._spawn(rd_latency, wr_latency, stall, seed, bridge_cycles, waves, wavefile, start_timeout,
                            progress)
            else:
                self.socket_path = socket_path
                if not os.path.exists(socket_path):
                    raise DeviceNotFound(f"{socket_path}: no simulator socket (start one with "
                                         f"`cosim --socket {socket_path} --persist`, or use plain `sim:`)")
                self._connect(time.monotonic() + start_timeout)
            self._handshake(*(expect or (regmap_info.REGMAP_HASH, isa_hash())), protocol)
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_uri(cls, uri: str) -> "SimTransport":
        _, rest, p = split_uri(uri)
        lat = int_param(p, "latency", None, uri)
        kw = dict(rd_latency=int_param(p, "rd_latency", lat or 1, uri),
                  wr_latency=int_param(p, "wr_latency", lat or 1, uri), seed=int_param(p, "seed", 1, uri),
                  bridge_cycles=int_param(p, "bridge", 16, uri))
        try:
            kw["stall"] = float(p.pop("stall", 0.0))
            kw["io_timeout"] = float(p.pop("timeout", 60.0))
        except ValueError:
            raise BadDeviceURI(f"device URI {uri!r}: stall= and timeout= take a number") from None
        if not 0.0 <= kw["stall"] < 1.0:
            raise BadDeviceURI(f"device URI {uri!r}: stall={kw['stall']} is a probability in [0, 1)")
        kw["waves"] = p.pop("waves", None) or None
        if kw["waves"] not in (None, "fst"):
            raise BadDeviceURI(f"device URI {uri!r}: waves={kw['waves']!r}; only waves=fst is supported")
        kw["wavefile"] = p.pop("wavefile", None)
        no_extra_params(p, uri)
        if rest:
            if kw["waves"] or kw["wavefile"]:
                raise BadDeviceURI(f"device URI {uri!r}: an attached simulator's options are its own")
            return cls(rest, io_timeout=kw["io_timeout"], uri=uri)
        return cls(None, uri=uri, progress=lambda m: print(m, file=sys.stderr, flush=True), **kw)

    # -- process and connection ------------------------------------------------------
    def _spawn(self, rd_latency, wr_latency, stall, seed, bridge_cycles, waves, wavefile, start_timeout,
               progress) -> None:
        from presil.host.simbuild import build_cosim

        exe = build_cosim(waves, progress=progress).path
        self.tmpdir = tempfile.mkdtemp(prefix="presil-sim-")  # 0700: nobody else can reach the socket
        self.socket_path = os.path.join(self.tmpdir, "npu.sock")
        self.log_path = os.path.join(self.tmpdir, "sim.log")
        cmd = [str(exe), "--socket", self.socket_path, "--rd-latency", str(rd_latency),
               "--wr-latency", str(wr_latency), "--stall-ppm", str(round(stall * 1e6)), "--seed", str(seed),
               "--bridge-cycles", str(bridge_cycles)]
        if waves:
            self.wavefile = os.path.abspath(wavefile or f"presil-sim-{os.getpid()}.fst")
            cmd += ["--waves", self.wavefile]
        with open(self.log_path, "wb") as log:
            # Own session: a Ctrl-C meant for the host must not kill the simulator
            # before close() has shut it down cleanly.
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self._finalizer = weakref.finalize(self, _cleanup, self.proc, self.tmpdir)
        self._connect(time.monotonic() + start_timeout)

    def _connect(self, deadline: float) -> None:
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise SimulatorCrashed("start-up", self.proc.returncode, _tail(self.log_path))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.socket_path)
                self._sock = s
                return
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if self.proc is None:
                    raise DeviceNotFound(f"{self.socket_path}: nothing listens on the simulator socket") from None
            except PermissionError:
                s.close()
                raise DeviceNotFound(f"{self.socket_path}: not allowed to connect (the socket is private "
                                     "to the user who started the simulator)") from None
            if time.monotonic() > deadline:
                raise DeviceTimeout("simulator start-up", 0.0, {}, 0)
            time.sleep(0.01)

    def _handshake(self, regmap_hash: int, isa: int, protocol: int) -> None:
        data = self._call(HELLO, struct.pack("<III", protocol, regmap_hash, isa))
        v = _HELLO_REPLY.unpack_from(data)
        keys = ("protocol", "magic", "regmap_hash", "isa_hash", "clock_hz", "hw_array", "seed", "mem_size",
                "rd_latency", "wr_latency", "stall_ppm", "pid", "bridge_cycles", "cycle")
        self._hello = dict(zip(keys, v))
        self._hello["waves"] = data[_HELLO_REPLY.size:].decode() or None

    # -- framing ---------------------------------------------------------------------
    def _call(self, op: int, *parts, timeout: float | None = None) -> bytes:
        return self._calls([(op, parts)], timeout=timeout)[0]

    def _calls(self, requests: list[tuple[int, tuple]], timeout: float | None = None) -> list[bytes]:
        """Send every request, then read the replies in order. Several requests
        go out before the first reply is read, so the simulator finds each one
        waiting when it finishes the one before (no idle clocks between them)."""
        if self._broken:
            raise TransportError(f"{self.uri}: {self._broken}")
        if self._sock is None:
            raise TransportError(f"{self.uri}: the simulator connection is closed")
        replies = []
        with self._lock:
            op = requests[0][0]
            try:
                self._sock.settimeout(timeout or self.io_timeout)
                for op, parts in requests:
                    self._sock.sendall(struct.pack("<II", sum(len(p) for p in parts), op))
                    for p in parts:
                        self._sock.sendall(p)
                for op, _ in requests:
                    length, status = struct.unpack("<II", self._recv(8))
                    replies.append((op, status, self._recv(length)))
            except socket.timeout:
                self._broken = f"the simulator did not answer {_OP_NAMES[op]} in time; connection dropped"
                self._kill()
                raise DeviceTimeout(f"sim: {_OP_NAMES[op]} request (simulator hung, killed)",
                                    timeout or self.io_timeout, {}, 0) from None
            except (ConnectionError, EOFError, OSError) as e:
                self._broken = f"the simulator went away ({type(e).__name__})"
                raise self._crashed(_OP_NAMES[op]) from None
        for op, status, body in replies:
            if status == OK:
                continue
            msg = body.decode(errors="replace")
            if status == ERR_MISMATCH:
                raise SimHandshakeRefused(msg)
            if status == ERR_RANGE:
                raise DmaWindowError(f"{self.uri}: {msg}")
            raise TransportError(f"{self.uri}: {_OP_NAMES[op]}: {msg}")
        return [body for _, _, body in replies]

    def _recv(self, n: int) -> bytes:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = self._sock.recv_into(view[got:])
            if k == 0:
                raise EOFError("connection closed")
            got += k
        return bytes(buf) if n < 1 << 16 else buf  # large DMA payloads are not copied again

    def _crashed(self, what: str) -> SimulatorCrashed:
        code = None
        if self.proc is not None:
            try:
                code = self.proc.wait(2.0)
            except subprocess.TimeoutExpired:  # closed the socket but still running: stop it
                self._kill()
                code = self.proc.returncode
        return SimulatorCrashed(what, code, _tail(self.log_path))

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    # -- Transport ---------------------------------------------------------------------
    def read32(self, addr: int) -> int:
        self.check_reg(addr)
        return self.confirm_alive(addr, self._raw_read32(addr))

    def _raw_read32(self, addr: int) -> int:
        return struct.unpack("<I", self._call(READ32, struct.pack("<I", addr)))[0]

    def write32(self, addr: int, value: int) -> None:
        self.check_reg(addr, value)
        self._call(WRITE32, struct.pack("<II", addr, value))

    def write32_burst(self, writes: list[tuple[int, int]]) -> None:
        """Register writes back to back, as a CPU posts them over PCIe: every
        write lands a fixed number of cycles after the one before, so the
        outcome does not depend on host timing (sim: only)."""
        for addr, value in writes:
            self.check_reg(addr, value)
        if writes:
            self._calls([(WRITE32, (struct.pack("<II", addr, value),)) for addr, value in writes])

    def dma_write(self, dev_addr: int, data) -> None:
        mv = memoryview(data).cast("B")
        if dev_addr < 0:
            raise DmaWindowError(f"{self.uri}: negative device address {dev_addr}")
        self._call(DMA_WRITE, struct.pack("<Q", dev_addr), mv)

    def dma_read(self, dev_addr: int, n: int) -> bytes:
        if dev_addr < 0 or n < 0:
            raise DmaWindowError(f"{self.uri}: device memory access at {dev_addr} of {n} bytes")
        return bytes(self._call(DMA_READ, struct.pack("<QQ", dev_addr, n)))

    def wait_irq(self, timeout_s: float) -> bool:
        """Runs the simulated clock until an interrupt edge, timeout_s of
        simulated time at HW_CLOCK_HZ, or timeout_s of wall time."""
        timeout_s = max(0.0, float(timeout_s))
        cycles = math.ceil(timeout_s * self._hello["clock_hz"])
        wall_ms = min(int(timeout_s * 1000), 0xFFFFFFFF)
        data = self._call(WAIT_IRQ, struct.pack("<QI", cycles, wall_ms), timeout=timeout_s + self.io_timeout)
        events, self.last_wait_cycles = struct.unpack("<QQ", data)
        return events > 0

    def reset(self) -> bool:
        self._call(RESET, struct.pack("<I", 8))
        return True

    def info(self) -> dict:
        h = self._hello or {}
        return {"platform": self.platform, "uri": self.uri, "bdf": None, "link": None,
                "mem_size": h.get("mem_size"), "socket": self.socket_path,
                "pid": h.get("pid"), "log": self.log_path, "clock_hz": h.get("clock_hz"),
                "simulated_clock": True, "protocol": h.get("protocol"), "seed": h.get("seed"),
                "rd_latency": h.get("rd_latency"), "wr_latency": h.get("wr_latency"),
                "stall": h.get("stall_ppm", 0) / 1e6, "bridge_cycles": h.get("bridge_cycles"), "waves": h.get("waves")}

    # -- simulation-only extras ----------------------------------------------------------
    def stats(self) -> dict:
        """cycle (simulated so far), clocked_s (wall time spent clocking), irq/busy
        lines, memory beats and AXI burst-rule violations seen by the memory model."""
        cyc, ns, pending, lines, br, bw, viol = _INFO_REPLY.unpack(self._call(INFO))
        return {"cycle": cyc, "clocked_s": ns / 1e9, "irq_pending": pending, "irq": bool(lines & 1),
                "busy": bool(lines & 2), "beats_read": br, "beats_written": bw, "violations": viol}

    def run_cycles(self, n: int) -> int:
        """Advance the clock by n cycles; returns the cycle count."""
        return struct.unpack("<Q", self._call(RUN, struct.pack("<Q", n), timeout=self.io_timeout + n / 1e5))[0]

    def mem_config(self, rd_latency: int = 1, wr_latency: int = 1, stall: float = 0.0, seed: int = 1,
                   error_range: tuple[int, int] = (1, 0)) -> None:
        """Memory-model timing and an address range answered with SLVERR (bus errors)."""
        self._call(MEM_CONFIG, struct.pack("<IIIQQQ", rd_latency, wr_latency, round(stall * 1e6), seed,
                                           *error_range))

    # -- shutdown ------------------------------------------------------------------------
    def close(self) -> None:
        """SHUTDOWN, wait for the process to exit, kill it if it does not."""
        sock, self._sock = self._sock, None
        if sock is not None:
            if self._hello is not None and not self._broken and self.proc is not None:
                try:
                    with self._lock:
                        sock.settimeout(self.shutdown_timeout)
                        sock.sendall(struct.pack("<II", 0, SHUTDOWN))
                        sock.recv(8)
                except OSError:
                    pass
            sock.close()  # a spawned simulator also exits on EOF
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.wait(self.shutdown_timeout)
            except subprocess.TimeoutExpired:
                self._kill()
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.log_path = None if not os.path.exists(self.log_path or "") else self.log_path
            self.tmpdir = None
