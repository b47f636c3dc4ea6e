"""Bring-up on golden: and on the emulated XDMA tree; exit codes; the regs CLI."""

from __future__ import annotations

import json

from presil.cli import main
from presil.host.bringup import bringup
from presil.host.emulation import emulated_pci

ALL = ["present", "link", "bars", "liveness", "identity", "scratch", "reset_values", "clock", "dma_loopback",
       "memory_march", "interrupt", "dma_window", "conv_tile", "model"]


def _run(uri, tmp_path, profile=None):
    lines = []
    path = tmp_path / "summary.json"
    rc = bringup(uri, profile, str(path), log=lines.append)
    return rc, json.loads(path.read_text()), lines


def test_bringup_golden(tmp_path):
    rc, s, lines = _run("golden:", tmp_path)
    st = {c["name"]: c["status"] for c in s["checks"]}
    assert rc == 0 and list(st) == ALL
    # No PCIe link on a model: reported as skipped with the reason, never as passed.
    assert st["link"] == st["bars"] == "skip" and "not applicable" in s["checks"][1]["detail"]
    assert all(v == "pass" for k, v in st.items() if k not in ("link", "bars"))
    assert lines[-1] == "12 passed, 0 failed, 2 skipped"
    scratch = next(c for c in s["checks"] if c["name"] == "scratch")
    assert scratch["metrics"]["reg_read_us"] > 0


def test_bringup_emulated_xdma(xdma_uri, tmp_path):
    profile = tmp_path / "board.toml"
    profile.write_text('[link]\nspeed_gts = 8.0\nwidth = 8\n[dma]\nbandwidth_bytes = 4194304\n'
                       '[memory]\nmarch_bytes = 262144\n')
    rc, s, lines = _run(xdma_uri, tmp_path, str(profile))
    assert rc == 0, [c for c in s["checks"] if c["status"] != "pass"]
    assert s["counts"] == {"pass": 14, "fail": 0, "skip": 0}


def test_bringup_link_below_profile_fails_and_skips_nothing_else(xdma_uri, tmp_path):
    rc, s, _ = _run(xdma_uri, tmp_path, {"link": {"speed_gts": 16.0, "width": 16},
                                         "dma": {"bandwidth_bytes": 1 << 20}, "memory": {"march_bytes": 65536}})
    st = {c["name"]: c for c in s["checks"]}
    assert rc == 1 and st["link"]["status"] == "fail" and "expected 16 GT/s x16" in st["link"]["detail"]


def test_bringup_wrong_identity_skips_dependents(tmp_path):
    rc, s, _ = _run("golden:?regmap_hash=0x1", tmp_path)
    st = {c["name"]: c for c in s["checks"]}
    assert rc == 1 and st["identity"]["status"] == "fail" and "REGMAP_HASH" in st["identity"]["detail"]
    assert st["conv_tile"]["status"] == "skip" and "prerequisite" in st["scratch"]["detail"]


def test_bringup_could_not_run(tmp_path):
    rc, s, _ = _run("xdma:/nonexistent/xdma0", tmp_path)
    assert rc == 2 and "no such device node" in s["could_not_run"]


def test_bringup_pci_register_only(tmp_path):
    with emulated_pci(tmp_path) as (uri, _):
        rc, s, _ = _run(uri, tmp_path)
    st = {c["name"]: c for c in s["checks"]}
    assert st["link"]["status"] == st["bars"]["status"] == st["identity"]["status"] == "pass"
    assert st["dma_loopback"]["status"] == "skip" and "no DMA" in st["dma_loopback"]["detail"]
    # A BAR file is plain memory, not the register block: reset/clock checks fail there, as they should.
    assert rc == 1


def test_regs_cli(capsys):
    assert main(["regs", "peek", "golden:", "MAGIC"]) == 0
    assert "MAGIC 0x5052534c" in capsys.readouterr().out
    assert main(["regs", "peek", "golden:", "0x14"]) == 0
    assert "HW_ARRAY 0x00100010 rows=16 cols=16" in capsys.readouterr().out
    assert main(["regs", "poke", "golden:", "scratch", "0xcafe"]) == 0
    assert main(["regs", "poke", "golden:", "CTRL", "1"]) == 0
    assert main(["regs", "dump", "golden:"]) == 0
    out = capsys.readouterr().out
    assert "PERF_INSTR_RETIRED_HI" in out and "DOORBELL" not in out  # write-only: not dumped
    assert main(["regs", "poke", "golden:", "MAGIC", "1"]) == 2
    assert "read-only" in capsys.readouterr().err
    assert main(["regs", "peek", "golden:", "NOPE"]) == 2
    assert main(["regs", "peek", "bogus:", "MAGIC"]) == 2


def test_bringup_cli(tmp_path, capsys):
    assert main(["bringup", "golden:", "--json", str(tmp_path / "s.json")]) == 0
    assert "12 passed, 0 failed, 2 skipped" in capsys.readouterr().out
