"""Emulated device trees for tests: a FUSE-backed XDMA device (the xdma:
transport's real file path, golden device behind it) and a fake sysfs PCI
function (the pci: transport's real mmap path)."""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from presil.host.emulation.sysfs_tree import make_pci_function, register_image

__all__ = ["emulated_pci", "emulated_xdma", "fuse_available", "make_pci_function", "register_image"]


def fuse_available() -> str | None:
    """None if an emulated XDMA tree can be mounted here, else the reason."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if not shutil.which("fusermount3"):
        return "fusermount3 not installed (Debian package fuse3)"
    try:
        importlib.import_module("mfusepy")  # loads libfuse3.so: fails here rather than at mount
    except (ImportError, OSError) as e:
        return f"mfusepy/libfuse3 unavailable: {e}"
    return None


@contextlib.contextmanager
def emulated_xdma(tmp_path, *, mem: int = 64 << 20, node: str = "xdma0", hang: bool = False,
                  bdf: str = "0000:03:00.0", timeout: float = 20.0):
    """Mount an emulated XDMA device under tmp_path and yield its URI
    (xdma:<tmp>/dev/xdma0?sysfs=<tmp>/sys); unmounted on exit."""
    reason = fuse_available()
    if reason:
        raise RuntimeError(f"cannot emulate an XDMA device: {reason}")
    tmp = Path(tmp_path)
    mnt, sysroot = tmp / "dev", tmp / "sys"
    mnt.mkdir(parents=True, exist_ok=True)
    make_pci_function(sysroot, bdf, xdma_node=node)
    cmd = [sys.executable, "-m", "presil.host.emulation.xdma_fuse", str(mnt), "--mem", str(mem), "--node", node]
    if hang:
        cmd.append("--hang")
    log = open(tmp / "xdma_fuse.log", "w+")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while not (mnt / f"{node}_user").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"emulated XDMA did not come up: {log.read()[-2000:]}")
            time.sleep(0.02)
        yield f"xdma:{mnt / node}?sysfs={sysroot}"
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True)
            proc.kill()
            proc.wait(5)
        log.close()


@contextlib.contextmanager
def emulated_pci(tmp_path, bdf: str = "0000:03:00.0", **kw):
    """A fake sysfs tree with one function whose BAR0 holds a fresh device's
    register image; yields (uri, function_dir)."""
    root = Path(tmp_path) / "sys"
    d = make_pci_function(root, bdf, bar0_image=register_image(), **kw)
    yield f"pci:{bdf}?sysfs={root}", d
