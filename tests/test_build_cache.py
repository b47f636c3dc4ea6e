"""presil.rtl.cached_build: the one build cache of the cocotb builds and the sim: executables."""

from __future__ import annotations

import pytest

from presil import rtl


def test_cached_build_reuses_rebuilds_and_wipes(tmp_path):
    src = tmp_path / "a.sv"
    src.write_text("module a; endmodule\n")
    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "exe").write_text("built")

    root = tmp_path / "root"
    folder, _, cached = rtl.cached_build(root, "cfg", "exe", [src], {"flags": 1}, build)
    assert not cached and len(calls) == 1 and (folder / "exe").is_file()
    assert rtl.cached_build(root, "cfg", "exe", [src], {"flags": 1}, build)[2] and len(calls) == 1
    (folder / "object.o").write_text("incremental")
    src.write_text("module a; wire w; endmodule\n")          # a source changed: rebuild in place
    assert not rtl.cached_build(root, "cfg", "exe", [src], {"flags": 1}, build)[2] and len(calls) == 2
    assert (folder / "object.o").is_file()
    rtl.cached_build(root, "cfg", "exe", [src], {"flags": 2}, build)   # settings changed: start empty
    assert len(calls) == 3 and not (folder / "object.o").exists()
    (folder / "exe").unlink()                                  # the executable went missing: rebuild
    assert not rtl.cached_build(root, "cfg", "exe", [src], {"flags": 2}, build)[2] and len(calls) == 4


def test_failed_build_is_not_cached(tmp_path):
    src = tmp_path / "a.sv"
    src.write_text("x\n")

    def broken(folder):
        raise RuntimeError("verilator said no")

    with pytest.raises(RuntimeError, match="said no"):
        rtl.cached_build(tmp_path, "cfg", "exe", [src], {}, broken)
    folder, _, cached = rtl.cached_build(tmp_path, "cfg", "exe", [src], {},
                                         lambda f: (f / "exe").write_text("ok"))
    assert not cached and (folder / "exe").read_text() == "ok"
