"""`presil asm` / `disasm` / `iss` on a hand-written program, and their errors."""

import numpy as np
import pytest

from presil.cli import main
from presil.golden.program import Program

# Copies a 1x4x4x16 int8 tensor through ACT: x at window offset 0, y at 256
# (the builder allocates tensors in declaration order); FENCE orders the load
# engine's write before the store engine's read.
SOURCE = """\
.rows 16
.tensor input  x 1,4,4,16 scale=0.1 zp=0
.tensor output y 1,4,4,16 scale=0.1 zp=0
LOAD mem=0 dram_offset=0 dram_stride=256 sram_addr=0 sram_stride=16 y_count=1 x_words=16{flags}
FENCE
STORE mem=0 dram_offset=256 dram_stride=256 sram_addr=0 sram_stride=16 y_count=1 x_words=16
END
"""


def _source(tmp_path, load_flags=""):
    src = tmp_path / "copy.s"
    src.write_text(SOURCE.format(flags=load_flags))
    return src


def test_asm_iss_disasm_round_trip(tmp_path, capsys):
    src = _source(tmp_path)
    prog_path = tmp_path / "copy.prog"
    assert main(["asm", str(src), "-o", str(prog_path)]) == 0
    prog = Program.load(prog_path)
    assert [t.name for t in prog.tensors] == ["x", "y"]
    x = np.random.default_rng(0).integers(-128, 128, (1, 4, 4, 16), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    assert main(["iss", str(prog_path), "--input", f"x={tmp_path / 'x.npy'}", "-o", str(tmp_path / "out")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "y.npy"), x)
    capsys.readouterr()
    assert main(["disasm", str(prog_path)]) == 0
    text = capsys.readouterr().out
    assert "LOAD mem=0" in text and "FENCE" in text and text.rstrip().endswith("END")


def test_token_leak_is_a_named_error(tmp_path, capsys):
    # LOAD pushes l2c but nothing pops it: END must report TOKEN_LEAK, exit 2.
    src = _source(tmp_path, load_flags=" push_next")
    prog_path = tmp_path / "leak.prog"
    assert main(["asm", str(src), "-o", str(prog_path)]) == 0
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 4, 16), np.int8))
    rc = main(["iss", str(prog_path), "--input", f"x={tmp_path / 'x.npy'}", "-o", str(tmp_path / "o")])
    assert rc == 2
    assert "TOKEN_LEAK" in capsys.readouterr().err


@pytest.mark.parametrize("bad,expect", [
    ("BOGUS a=1\nEND\n", "BOGUS"),
    (".tensor input x 1,a,4,16\nEND\n", ".tensor"),
    ("LOAD mem=7 y_count=1 x_words=1\nEND\n", "mem"),
])
def test_asm_bad_source_exit_2(tmp_path, capsys, bad, expect):
    src = tmp_path / "bad.s"
    src.write_text(bad)
    assert main(["asm", str(src), "-o", str(tmp_path / "bad.prog")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and expect in err


def test_disasm_corrupt_file_exit_2(tmp_path, capsys):
    path = tmp_path / "junk.prog"
    path.write_bytes(b"PRSLPRG\0" + bytes(200))
    assert main(["disasm", str(path)]) == 2
    assert "ProgramFormatError" in capsys.readouterr().err
