"""Reading a PCI function's sysfs directory: IDs, BARs, link. The root is
configurable (env PRESIL_SYSFS_ROOT) so tests run against fake trees."""

from __future__ import annotations

import os
import re


def sysfs_root(override: str | None = None) -> str:
    return override or os.environ.get("PRESIL_SYSFS_ROOT", "/sys")


def pci_dir(bdf: str, root: str | None = None) -> str:
    return os.path.join(sysfs_root(root), "bus", "pci", "devices", bdf)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def parse_speed(text: str | None) -> float | None:
    """'8 GT/s', '8.0 GT/s PCIe', '2.5 GT/s' -> GT/s as a float (kernels differ in the text)."""
    if not text:
        return None
    m = re.search(r"(\d+(?:\.\d+)?)\s*GT/s", text)
    return float(m.group(1)) if m else None


def parse_width(text: str | None) -> int | None:
    """'8', 'x8' -> 8."""
    if not text:
        return None
    m = re.search(r"(\d+)", text)
    return int(m.group(1)) if m else None


def link_info(bdf: str, root: str | None = None) -> dict:
    d = pci_dir(bdf, root)
    return {"current_speed_gts": parse_speed(_read(os.path.join(d, "current_link_speed"))),
            "current_width": parse_width(_read(os.path.join(d, "current_link_width"))),
            "max_speed_gts": parse_speed(_read(os.path.join(d, "max_link_speed"))),
            "max_width": parse_width(_read(os.path.join(d, "max_link_width")))}


def ids(bdf: str, root: str | None = None) -> dict:
    d = pci_dir(bdf, root)
    out = {}
    for k in ("vendor", "device", "class"):
        v = _read(os.path.join(d, k))
        out[k] = int(v, 16) if v else None
    return out


def bars(bdf: str, root: str | None = None) -> list[dict]:
    """BARs from `resource`: one line per resource 'start end flags' in hex;
    the first six are BAR0..5 (size 0 = unused)."""
    text = _read(os.path.join(pci_dir(bdf, root), "resource")) or ""
    out = []
    for i, line in enumerate(text.splitlines()[:6]):
        parts = line.split()
        if len(parts) < 3:
            continue
        start, end, flags = (int(x, 16) for x in parts[:3])
        size = end - start + 1 if end > start else 0
        out.append({"index": i, "start": start, "size": size, "flags": flags})
    return out
