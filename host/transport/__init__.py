"""Device transports, chosen by URI scheme:

    golden:[?mem=64M&...]            in-process golden device model
    xdma:/dev/xdma0[?chunk=..]       Xilinx XDMA character devices (prefix of the nodes)
    pci:0000:03:00.0                 sysfs BAR mmap, registers only
    sim:PATH                         RTL co-simulation (not in this package yet)
"""

from __future__ import annotations

import os

from presil.host.errors import BadDeviceURI
from presil.host.transport.base import PLATFORMS, Transport, split_uri

__all__ = ["PLATFORMS", "Transport", "open_transport"]


def open_transport(uri: str | None = None) -> Transport:
    """Open the transport a URI names (default: env PRESIL_DEVICE)."""
    uri = uri or os.environ.get("PRESIL_DEVICE")
    if not uri:
        raise BadDeviceURI("no device given and PRESIL_DEVICE is not set")
    scheme, _, _ = split_uri(uri)
    if scheme == "golden":
        from presil.host.transport.golden import GoldenTransport

        return GoldenTransport.from_uri(uri)
    if scheme == "xdma":
        from presil.host.transport.xdma import XdmaTransport

        return XdmaTransport.from_uri(uri)
    if scheme == "pci":
        from presil.host.transport.pci import PciTransport

        return PciTransport.from_uri(uri)
    if scheme == "sim":
        try:  # the RTL co-simulation transport is written elsewhere; slot it in when present
            from presil.host.transport.sim import SimTransport  # type: ignore[import-not-found]
        except ImportError:
            raise BadDeviceURI(f"{uri!r}: the sim: transport (RTL co-simulation) is not installed yet") from None
        return SimTransport.from_uri(uri)
    raise BadDeviceURI(f"device URI {uri!r}: unknown scheme {scheme!r}; expected golden:, xdma:, pci: or sim:")
