"""The generated Python register layer, checked against the RDL compiled independently."""

from __future__ import annotations

import re

import pytest
from systemrdl import RDLCompiler

from presil import codegen
from presil.host.regs import NormalCallbackSet, npu_regs_cls, regmap_info

ROOT = codegen.find_repo_root()


@pytest.fixture(scope="module")
def rdl():
    """The register map compiled straight from the source, not through codegen."""
    rdlc = RDLCompiler()
    rdlc.compile_file(str(ROOT / "rtl/regs/npu_regs.rdl"))
    return rdlc.elaborate(top_def_name="npu_regs").top


class FakeBus:
    """32-bit device registers in a dict, with woclr modelled for IRQ_STATUS."""

    def __init__(self, init: dict[int, int] | None = None):
        self.mem: dict[int, int] = dict(init or {})
        self.log: list[tuple[str, int, int]] = []

    def read(self, addr: int, width: int, accesswidth: int) -> int:
        assert width == 32 and accesswidth == 32 and addr % 4 == 0
        value = self.mem.get(addr, 0)
        self.log.append(("r", addr, value))
        return value

    def write(self, addr: int, width: int, accesswidth: int, data: int) -> None:
        assert width == 32 and accesswidth == 32 and addr % 4 == 0 and 0 <= data < 1 << 32
        self.log.append(("w", addr, data))
        if addr == regmap_info.OFFSETS["IRQ_STATUS"]:
            self.mem[addr] = self.mem.get(addr, 0) & ~data  # write 1 to clear
        else:
            self.mem[addr] = data

    def regs(self):
        return npu_regs_cls(callbacks=NormalCallbackSet(read_callback=self.read, write_callback=self.write))


def _rdl_resets(rdl) -> dict[str, int]:
    """Reset value of each register whose readable bits all have a reset."""
    out = {}
    for reg in rdl.registers():
        fields = list(reg.fields())
        if reg.has_sw_readable and all(f.get_property("reset") is not None for f in fields if f.is_sw_readable):
            out[reg.inst_name] = sum((f.get_property("reset") or 0) << f.low for f in fields)
    return out


def test_offsets_match_rdl(rdl):
    regs = FakeBus().regs()
    names = [r.inst_name for r in rdl.registers()]
    assert names == list(regmap_info.REGISTERS)
    for reg in rdl.registers():
        assert getattr(regs, reg.inst_name).address == reg.absolute_address, reg.inst_name
        assert regmap_info.OFFSETS[reg.inst_name] == reg.absolute_address


def test_contract_offsets():
    # A few offsets other code is written against: moving them is a breaking change.
    expected = {"MAGIC": 0x000, "SCRATCH": 0x030, "CTRL": 0x040, "STATUS": 0x044, "DOORBELL": 0x058,
                "IRQ_STATUS": 0x060, "ERR_CODE": 0x068, "DMA_WIN_LIMIT": 0x084,
                "PERF_FREE_CYCLES_LO": 0x100, "PERF_INSTR_RETIRED_HI": 0x154}
    assert {k: regmap_info.OFFSETS[k] for k in expected} == expected


def test_reset_values_match_rdl(rdl):
    resets = _rdl_resets(rdl)
    assert resets["MAGIC"] == 0x5052534C and resets["VERSION"] == 0x01000000 and resets["SCRATCH"] == 0
    assert regmap_info.RESET_VALUES == resets
    regs = FakeBus().regs()
    for reg in rdl.registers():
        for f in reg.fields():
            reset = f.get_property("reset")
            if reset is not None:
                assert getattr(getattr(regs, reg.inst_name), f.inst_name).default == reset, f.get_path()


def test_bring_up_reset_check_reads_through_layer(rdl):
    # A device fresh out of reset: every register with a defined reset holds it.
    bus = FakeBus({regmap_info.OFFSETS[n]: v for n, v in _rdl_resets(rdl).items()})
    regs = bus.regs()
    for name, value in regmap_info.RESET_VALUES.items():
        assert getattr(regs, name).read() == value, name
    assert regs.MAGIC.read() == regmap_info.MAGIC == 0x5052534C
    assert regs.VERSION.read_fields() == {"patch": 0, "minor": 0, "major": 1}


def test_scratch_write_read():
    bus = FakeBus()
    regs = bus.regs()
    regs.SCRATCH.write(0xDEADBEEF)
    assert bus.mem[0x30] == 0xDEADBEEF
    assert regs.SCRATCH.read() == 0xDEADBEEF
    assert regs.SCRATCH.value.read() == 0xDEADBEEF


def test_write_only_registers():
    bus = FakeBus()
    regs = bus.regs()
    regs.DOORBELL.write(0)  # any value rings it; the write itself is what counts
    regs.CTRL.write_fields(SOFT_RESET=1, ABORT=0)
    assert bus.log == [("w", 0x58, 0), ("w", 0x40, 0x1)]


def test_irq_status_woclr():
    bus = FakeBus({0x60: 0b11})
    regs = bus.regs()
    # Clear DONE only: write the whole register with just that bit set.
    regs.IRQ_STATUS.write(0b01)
    assert regs.IRQ_STATUS.read_fields() == {"DONE": 0, "ERROR": 1}
    # The layer does not model woclr: a field write is read-modify-write and
    # writes the other pending bit back as 1, clearing it too. Drivers must
    # clear interrupt bits with a whole-register write, as above.
    bus.mem[0x60] = 0b11
    regs.IRQ_STATUS.DONE.write(1)
    assert bus.mem[0x60] == 0


def test_err_code_enum_matches_rdl(rdl):
    enc = rdl.get_child_by_name("ERR_CODE").get_child_by_name("code").get_property("encode")
    rdl_members = {m.name: m.value for m in enc.members.values()}
    assert {e.name: e.value for e in regmap_info.ErrCode} == rdl_members
    assert rdl_members["ABORTED"] == 10 and rdl_members["DMA_WINDOW"] == 4
    bus = FakeBus({0x68: 4})
    assert bus.regs().ERR_CODE.code.read().name == "DMA_WINDOW"


def test_regmap_hash_everywhere():
    h = codegen.regmap_hash(ROOT)
    assert regmap_info.REGMAP_HASH == h
    from presil.host.regs import REGMAP_HASH
    assert REGMAP_HASH == h
    pkg = (ROOT / "rtl/generated/npu_regmap_pkg.sv").read_text(encoding="utf-8")
    m = re.search(r"localparam logic \[31:0\] REGMAP_HASH = 32'h([0-9A-Fa-f]{8});", pkg)
    assert m and int(m.group(1), 16) == h


def test_golden_error_codes_match_register_map_enum():
    """The ISS's ErrorCode and the register map's err_code_e are one numbering."""
    from presil.golden.device_errors import ErrorCode
    from presil.host.regs.regmap_info import ErrCode

    assert {c.name: c.value for c in ErrorCode} == {c.name: c.value for c in ErrCode}
