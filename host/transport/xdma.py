"""`xdma:/dev/xdma0` — a board behind Xilinx's XDMA driver (dma_ip_drivers).

Nodes (prefix + suffix): `_user` the register BAR, one 32-bit access per 4-byte
pread/pwrite at the register offset; `_h2c_N`/`_c2h_N` DMA by pwrite/pread at
the card address; `_events_N` the user interrupt (poll() says whether one is
pending without clearing it, a 4-byte read clears it). Never readv/writev/AIO on
these nodes (known kernel crashes). Parameters: ?channel=0&irq=0&chunk=BYTES
&mem=BYTES&sysfs=ROOT&strict_perms=1."""

from __future__ import annotations

import errno
import os
import select
import stat
import struct

from presil.host.errors import (BadDeviceURI, DeviceNotFound, DevicePermissionError,
                                DeviceTimeout, TransportError)
from presil.host.transport.base import Transport, int_param, no_extra_params, split_uri
from presil.host.transport.sysfs import link_info, sysfs_root

MAX_CHUNK = 0x7FFFF000  # the largest single transfer the XDMA driver accepts
ENGINE_STATUS = {"h2c": 0x0040, "c2h": 0x1040}  # engine status register in the _control BAR (+ channel * 0x100)


def dev_root() -> str:
    return os.environ.get("PRESIL_DEV_ROOT", "/dev")


def open_node(path: str, flags: int, strict_perms: bool = False) -> int:
    """open(2) with named errors. strict_perms checks the mode bits against the
    effective uid even for root (root bypasses them otherwise), so the
    permission path can be tested as root and a misconfigured udev rule is
    reported even when running privileged."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DeviceNotFound(f"{path}: no such device node (is the xdma kernel module loaded? "
                             f"`lsmod | grep xdma`)") from None
    except PermissionError:
        raise DevicePermissionError(f"{path}: cannot even stat the node as uid {os.geteuid()} "
                                    "(a parent directory denies search)") from None
    if strict_perms:
        if st.st_uid == os.geteuid():
            bits = st.st_mode >> 6 & 7
        elif st.st_gid in (os.getegid(), *os.getgroups()):
            bits = st.st_mode >> 3 & 7
        else:
            bits = st.st_mode & 7
        need = 4 | (2 if flags & (os.O_WRONLY | os.O_RDWR) else 0)
        if bits & need != need:
            raise DevicePermissionError(f"{path}: mode {stat.filemode(st.st_mode)} does not allow "
                                        f"{'read/write' if need & 2 else 'read'} for uid {os.geteuid()} "
                                        "(strict check); add a udev rule or run with the device group")
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except PermissionError:
        raise DevicePermissionError(f"{path}: permission denied for uid {os.geteuid()}; add a udev rule "
                                    "(MODE/GROUP) for the xdma nodes or run with the device group") from None


class XdmaTransport(Transport):
    platform = "fpga"

    def __init__(self, prefix: str, *, channel: int = 0, irq: int = 0, chunk: int = MAX_CHUNK,
                 mem_size: int | None = None, sysfs: str | None = None, strict_perms: bool = False,
                 uri: str | None = None):
        if not 0 < chunk <= MAX_CHUNK:
            raise BadDeviceURI(f"chunk {chunk} outside (0, {MAX_CHUNK:#x}]")
        self.prefix, self.chunk, self.uri = prefix, chunk, uri or f"xdma:{prefix}"
        self.mem_size, self._sysfs = mem_size, sysfs
        self.names = {"user": f"{prefix}_user", "h2c": f"{prefix}_h2c_{channel}", "c2h": f"{prefix}_c2h_{channel}",
                      "events": f"{prefix}_events_{irq}", "control": f"{prefix}_control"}
        self.channel = channel
        self._fds: dict[str, int] = {}
        try:
            self._fds["user"] = open_node(self.names["user"], os.O_RDWR, strict_perms)
            self._fds["h2c"] = open_node(self.names["h2c"], os.O_WRONLY, strict_perms)
            self._fds["c2h"] = open_node(self.names["c2h"], os.O_RDONLY, strict_perms)
            self._fds["events"] = open_node(self.names["events"], os.O_RDONLY, strict_perms)
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_uri(cls, uri: str) -> "XdmaTransport":
        _, rest, p = split_uri(uri)
        if not rest:
            raise BadDeviceURI(f"device URI {uri!r}: xdma: needs the node prefix, e.g. xdma:/dev/xdma0")
        if not rest.startswith("/"):
            rest = os.path.join(dev_root(), rest)  # xdma:xdma0 -> $PRESIL_DEV_ROOT/xdma0
        kw = dict(channel=int_param(p, "channel", 0, uri), irq=int_param(p, "irq", 0, uri),
                  chunk=int_param(p, "chunk", MAX_CHUNK, uri), mem_size=int_param(p, "mem", None, uri),
                  strict_perms=bool(int_param(p, "strict_perms", 0, uri)), sysfs=p.pop("sysfs", None))
        no_extra_params(p, uri)
        return cls(rest, uri=uri, **kw)

    # -- registers ------------------------------------------------------------------
    def read32(self, addr: int) -> int:
        self.check_reg(addr)
        return self.confirm_alive(addr, self._raw_read32(addr))

    def _raw_read32(self, addr: int) -> int:
        data = self._io(os.pread, "user", 4, addr)
        if len(data) != 4:
            raise TransportError(f"{self.names['user']}: read at 0x{addr:x} returned {len(data)} bytes, not 4")
        return struct.unpack("<I", data)[0]

    def write32(self, addr: int, value: int) -> None:
        self.check_reg(addr, value)
        n = self._io(os.pwrite, "user", struct.pack("<I", value), addr)
        if n != 4:
            raise TransportError(f"{self.names['user']}: write at 0x{addr:x} wrote {n} bytes, not 4")

    # -- DMA --------------------------------------------------------------------------
    def dma_write(self, dev_addr: int, data) -> None:
        mv = memoryview(data).cast("B")
        done = 0
        while done < mv.nbytes:
            n = self._io(os.pwrite, "h2c", mv[done: done + self.chunk], dev_addr + done)
            if n <= 0:
                raise TransportError(f"{self.names['h2c']}: pwrite at 0x{dev_addr + done:x} made no progress")
            done += n

    def dma_read(self, dev_addr: int, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            part = self._io(os.pread, "c2h", min(self.chunk, n - len(out)), dev_addr + len(out))
            if not part:
                raise TransportError(f"{self.names['c2h']}: pread at 0x{dev_addr + len(out):x} returned nothing")
            out += part
        return bytes(out)

    def _io(self, fn, node: str, arg, offset: int):
        try:
            return fn(self._fds[node], arg, offset)
        except OSError as e:
            if e.errno == errno.EPROTO:
                raise TransportError(f"{self.names[node]}: misaligned or refused access at 0x{offset:x}") from None
            if e.errno in (errno.EIO, errno.ETIME, errno.ETIMEDOUT, 512):
                status = self.engine_status(node)
                raise DeviceTimeout(f"{self.names[node]} transfer at 0x{offset:x} (engine status {status})",
                                    10.0, {"ENGINE_STATUS": status if isinstance(status, int) else 0}, 0) from None
            raise

    def engine_status(self, node: str):
        """The DMA engine's status register from the _control BAR, if readable."""
        if node not in ENGINE_STATUS:
            return "n/a"
        try:
            fd = os.open(self.names["control"], os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return "unavailable (no _control node)"
        try:
            return struct.unpack("<I", os.pread(fd, 4, ENGINE_STATUS[node] + self.channel * 0x100))[0]
        except OSError:
            return "unavailable"
        finally:
            os.close(fd)

    # -- interrupt ---------------------------------------------------------------------
    def wait_irq(self, timeout_s: float) -> bool:
        # poll() reports a pending event without clearing it; the read clears it.
        fd = self._fds["events"]
        p = select.poll()
        p.register(fd, select.POLLIN)
        if not p.poll(max(0, int(timeout_s * 1000 + 0.999))):
            return False
        data = os.read(fd, 4)
        return len(data) == 4 and struct.unpack("<I", data)[0] > 0

    # -- identity ------------------------------------------------------------------------
    def bdf(self) -> str | None:
        """The PCI function behind the nodes, from sysfs (class/xdma/<node>/device)."""
        link = os.path.join(sysfs_root(self._sysfs), "class", "xdma", os.path.basename(self.names["user"]), "device")
        try:
            return os.path.basename(os.path.realpath(link)) if os.path.exists(link) else None
        except OSError:
            return None

    def info(self) -> dict:
        bdf = self.bdf()
        d = {"platform": self.platform, "uri": self.uri, "bdf": bdf, "nodes": dict(self.names), "chunk": self.chunk,
             "link": link_info(bdf, self._sysfs) if bdf else None}
        if self.mem_size:
            d["mem_size"] = self.mem_size
        else:
            try:  # an emulated/ file-backed c2h node has the memory's size; a real char device has 0
                size = os.fstat(self._fds["c2h"]).st_size
                if size:
                    d["mem_size"] = size
            except (OSError, KeyError):
                pass
        return d

    def reset(self) -> bool:
        """No hard reset: a PCI function reset under the XDMA driver loses its
        DMA engine state, so the driver's SOFT_RESET is the only reset here."""
        return False

    def close(self) -> None:
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = {}
