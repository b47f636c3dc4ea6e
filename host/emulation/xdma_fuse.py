"""An emulated XDMA device: a FUSE filesystem whose nodes behave like the XDMA
driver's character devices, backed by the golden device model, so the xdma:
transport runs its real pread/pwrite/poll code path without a board.

    python -m presil.host.emulation.xdma_fuse MOUNTPOINT [--mem BYTES] [--node xdma0]

Nodes: <node>_user (one 32-bit register access per read/write, EPROTO when
misaligned), <node>_h2c_0 / <node>_c2h_0 (DMA at the file offset = card address),
<node>_events_0 (a 4-byte read blocks until an interrupt edge, returns the count
and clears it; poll() reports it without clearing). Runs in its own process:
the device then really is concurrent with the host, as a board is."""

from __future__ import annotations

import argparse
import ctypes
import errno
import select
import stat
import struct

import mfusepy as fuse

from presil.host.transport.golden import GoldenDevice
from presil.host.emulation.sysfs_tree import BAR0_SIZE

_lib = fuse._libfuse
_lib.fuse_notify_poll.argtypes = [ctypes.c_void_p]
_lib.fuse_pollhandle_destroy.argtypes = [ctypes.c_void_p]


class XdmaFS(fuse.Operations):
    use_ns = True

    def __init__(self, device: GoldenDevice, node: str = "xdma0"):
        self.dev = device
        self.files = {f"/{node}_user": "user", f"/{node}_h2c_0": "h2c", f"/{node}_c2h_0": "c2h",
                      f"/{node}_events_0": "events"}
        self.poll_handles: list[int] = []
        self.closing = False
        device.irq_listeners.append(self._irq_edge)

    def _irq_edge(self) -> None:  # called under the device lock on each interrupt edge
        for ph in self.poll_handles:
            _lib.fuse_notify_poll(ph)
            _lib.fuse_pollhandle_destroy(ph)
        self.poll_handles.clear()

    def getattr(self, path, fh=None):
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        kind = self.files.get(path)
        if kind is None:
            raise fuse.FuseOSError(errno.ENOENT)
        size = {"user": BAR0_SIZE, "events": 0}.get(kind, len(self.dev.mem))
        return {"st_mode": stat.S_IFREG | 0o666, "st_nlink": 1, "st_size": size}

    def readdir(self, path, fh):
        return [".", ".."] + [p[1:] for p in self.files]

    def open(self, path, flags):
        if path not in self.files:
            raise fuse.FuseOSError(errno.ENOENT)
        return 0

    def truncate(self, path, length, fh=None):
        return 0

    def read(self, path, size, offset, fh):
        kind = self.files[path]
        if kind == "user":
            if offset % 4:
                raise fuse.FuseOSError(errno.EPROTO)
            return struct.pack("<I", self.dev.read32(offset))  # 4 bytes whatever size was asked
        if kind == "c2h":
            if offset + size > len(self.dev.mem):
                raise fuse.FuseOSError(errno.EIO)  # an AXI DECERR surfaces as EIO
            return self.dev.dma_read(offset, size)
        if kind == "events":
            with self.dev.cond:
                self.dev.cond.wait_for(lambda: self.dev.irq_events > 0 or self.closing)
                n, self.dev.irq_events = self.dev.irq_events, 0
            return struct.pack("<I", n)
        raise fuse.FuseOSError(errno.EINVAL)

    def write(self, path, data, offset, fh):
        kind = self.files[path]
        if kind == "user":
            if offset % 4:
                raise fuse.FuseOSError(errno.EPROTO)
            if len(data) < 4:
                raise fuse.FuseOSError(errno.EINVAL)
            self.dev.write32(offset, struct.unpack_from("<I", data)[0])  # only the first word, as XDMA
            return 4
        if kind == "h2c":
            if offset + len(data) > len(self.dev.mem):
                raise fuse.FuseOSError(errno.EIO)
            self.dev.dma_write(offset, data)
            return len(data)
        raise fuse.FuseOSError(errno.EINVAL)

    def poll(self, path, fh, ph, reventsp):
        with self.dev.cond:
            if self.files.get(path) == "events":
                if ph:
                    self.poll_handles.append(ph)
                reventsp[0] = select.POLLIN if self.dev.irq_events else 0
            else:
                reventsp[0] = select.POLLIN | select.POLLOUT
                if ph:
                    _lib.fuse_pollhandle_destroy(ph)
        return 0

    def destroy(self, path):
        with self.dev.cond:
            self.closing = True
            self.dev.cond.notify_all()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mountpoint")
    ap.add_argument("--mem", type=lambda s: int(s, 0), default=64 << 20, help="device memory bytes")
    ap.add_argument("--node", default="xdma0")
    ap.add_argument("--hang", action="store_true", help="programs hang (timeout tests)")
    a = ap.parse_args(argv)
    fs = XdmaFS(GoldenDevice(mem_size=a.mem, hang=a.hang), a.node)
    # direct_io: no page cache, every access reaches the handlers at its own offset and size.
    fuse.FUSE(fs, a.mountpoint, foreground=True, direct_io=True, nothreads=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
