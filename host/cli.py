"""`presil bringup` and `presil regs`: the board-facing commands."""

from __future__ import annotations

import sys

from presil.host.errors import HostError


def register(subparsers) -> None:
    b = subparsers.add_parser("bringup", help="ordered bring-up checks of a device (bus to model)",
                              description="Bring-up checks from the bus to a model, each skipped when a "
                                          "prerequisite failed. Exit 0 pass, 1 fail, 2 could not run.")
    b.add_argument("device", help="device URI: golden:, xdma:/dev/xdma0, pci:0000:03:00.0")
    b.add_argument("--profile", help="board profile TOML (expected link, BAR0 size, clock, DMA bandwidth)")
    b.add_argument("--json", dest="json_path", help="write a JSON summary here")
    b.set_defaults(func=cmd_bringup)

    r = subparsers.add_parser("regs", help="read and write NPU registers by name",
                              description="Register access through the generated register layer.")
    r.set_defaults(func=lambda args: (r.print_help(), 2)[1])
    sub = r.add_subparsers(dest="regs_command", metavar="ACTION")
    d = sub.add_parser("dump", help="every readable register")
    d.add_argument("device")
    d.set_defaults(func=cmd_dump)
    p = sub.add_parser("peek", help="read one register (name or byte offset)")
    p.add_argument("device")
    p.add_argument("reg", help="register name (e.g. STATUS) or offset (0x44)")
    p.set_defaults(func=cmd_peek)
    k = sub.add_parser("poke", help="write one register")
    k.add_argument("device")
    k.add_argument("reg")
    k.add_argument("value", help="integer, e.g. 0xdeadbeef")
    k.set_defaults(func=cmd_poke)


def cmd_bringup(args) -> int:
    from presil.host.bringup import bringup

    return bringup(args.device, args.profile, args.json_path)


def _open(uri):
    # Debugging tool: no identity check and no reset, so a wrong or wedged device can be inspected as it is.
    from presil.host.driver import Device

    return Device.open(uri, check=False, reset=False)


def _resolve(reg: str):
    """Name or offset -> the register layer's attribute name."""
    from presil.host.regs import regmap_info

    if reg.upper() in regmap_info.REGISTERS:
        return reg.upper()
    try:
        off = int(reg, 0)
    except ValueError:
        raise HostError(f"unknown register {reg!r}; names: {', '.join(regmap_info.REGISTERS)}") from None
    for name, r in regmap_info.REGISTERS.items():
        if r.offset == off:
            return name
    raise HostError(f"no register at offset 0x{off:x}")


def _fields(name: str, value: int) -> str:
    from presil.host.regs import regmap_info

    fs = regmap_info.REGISTERS[name].fields
    if len(fs) == 1 and fs[0].width == 32:
        return ""
    return " ".join(f"{f.name}={value >> f.lsb & ((1 << f.width) - 1)}" for f in fs)


def _run(fn) -> int:
    try:
        return fn()
    except HostError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def cmd_dump(args) -> int:
    def go():
        with _open(args.device) as dev:
            for name, value in dev.regs_dump().items():
                print(f"{name:26} 0x{value:08x}  {_fields(name, value)}".rstrip())
        return 0
    return _run(go)


def cmd_peek(args) -> int:
    def go():
        name = _resolve(args.reg)
        with _open(args.device) as dev:
            reg = getattr(dev.regs, name)
            from presil.host.regs import regmap_info

            if regmap_info.REGISTERS[name].access == "w":
                raise HostError(f"{name} is write-only")
            v = reg.read()
            print(f"{name} 0x{v:08x} {_fields(name, v)}".rstrip())
        return 0
    return _run(go)


def cmd_poke(args) -> int:
    def go():
        from presil.host.regs import regmap_info

        name = _resolve(args.reg)
        value = int(args.value, 0)
        if regmap_info.REGISTERS[name].access == "r":
            raise HostError(f"{name} is read-only")
        with _open(args.device) as dev:
            reg = getattr(dev.regs, name)
            if name == "CTRL":  # write-only field register: the layer wants every field named
                fs = regmap_info.REGISTERS[name].fields
                reg.write_fields(**{f.name: value >> f.lsb & ((1 << f.width) - 1) for f in fs})
            else:
                reg.write(value)
            print(f"{name} <- 0x{value:08x}")
        return 0
    return _run(go)
