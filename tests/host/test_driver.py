"""Driver: identity checks, bad URIs, permissions, timeouts with recovery,
device faults, the allocator, golden vs emulated xdma, the runtime."""

from __future__ import annotations

import os

import numpy as np
import pytest

from presil.golden.iss import run as golden_run
from presil.host import smoke
from presil.host.alloc import DeviceMemory
from presil.host.driver import Device, quantize, dequantize
from presil.host.errors import (BadDeviceURI, DeviceFault, DeviceNotFound, DevicePermissionError, DeviceTimeout,
                                DeviceVersionMismatch, DmaWindowError)
from presil.host.regs import regmap_info
from presil.host.runtime import Runner
from presil.host.transport.golden import GoldenDevice, GoldenTransport


@pytest.mark.parametrize("param,field", [("magic=0x12345678", "MAGIC"), ("version=0x02000000", "VERSION"),
                                         ("isa_hash=0x1", "ISA_HASH"), ("regmap_hash=0xdead", "REGMAP_HASH")])
def test_identity_mismatch_names_field(param, field):
    with pytest.raises(DeviceVersionMismatch) as e:
        Device.open(f"golden:?{param}")
    assert e.value.field == field and "expected 0x" in str(e.value) and "device reports 0x" in str(e.value)


def test_program_vs_device_parameters():
    prog, _ = smoke.conv_tile()
    with Device.open(GoldenTransport(GoldenDevice(1 << 20, depths={"WGT": 64}))) as d:
        with pytest.raises(DeviceVersionMismatch, match="HW_WGT_DEPTH"):
            d.load(prog)


@pytest.mark.parametrize("uri", ["", "nonsense", "foo:bar", "golden:?mem=lots", "golden:?bogus=1",
                                 "golden:/path", "xdma:", "pci:03:00"])
def test_bad_uri(uri, monkeypatch):
    monkeypatch.delenv("PRESIL_DEVICE", raising=False)
    with pytest.raises(BadDeviceURI):
        Device.open(uri)


def test_env_device(monkeypatch):
    monkeypatch.setenv("PRESIL_DEVICE", "golden:?mem=1M")
    with Device.open() as d:
        assert d.platform == "golden-model"


def _fake_nodes(tmp_path, mode):
    for suffix in ("_user", "_h2c_0", "_c2h_0", "_events_0"):
        p = tmp_path / f"xdma0{suffix}"
        p.write_bytes(bytes(4096))
        p.chmod(mode)
    return tmp_path / "xdma0"


def test_missing_node(tmp_path, monkeypatch):
    monkeypatch.setenv("PRESIL_DEV_ROOT", str(tmp_path))
    with pytest.raises(DeviceNotFound, match="xdma0_user"):
        Device.open("xdma:xdma0")
    with pytest.raises(DeviceNotFound):
        Device.open("pci:0000:99:00.0?sysfs=" + str(tmp_path))


def test_permission_strict_check(tmp_path):
    # Root ignores mode bits, so the test asks for the strict check (mode bits are authoritative).
    prefix = _fake_nodes(tmp_path, 0)
    with pytest.raises(DevicePermissionError, match="mode ----------"):
        Device.open(f"xdma:{prefix}?strict_perms=1")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another uid")
def test_permission_real_open_as_other_user():
    # The plain path: a child that is not root gets EACCES from open(2) itself. The nodes sit in a
    # world-searchable directory (pytest's tmp_path is 0700) so only their own mode refuses.
    import shutil
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp(prefix="presil-perm-"))
    os.chmod(d, 0o755)
    prefix = _fake_nodes(d, 0)
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.setgid(65534)
            os.setuid(65534)
            from presil.host.transport.xdma import XdmaTransport
            XdmaTransport(str(prefix))
            code = 1
        except DevicePermissionError:
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    shutil.rmtree(d)
    assert os.WEXITSTATUS(status) == 0  # 0: DevicePermissionError; 1: opened; 3: another error


def test_timeout_dumps_and_recovers():
    dev = GoldenDevice(4 << 20, hang=True)
    prog, inputs = smoke.conv_tile()
    with Device.open(GoldenTransport(dev)) as d:
        lp = d.load(prog)
        with pytest.raises(DeviceTimeout) as e:
            d.run(lp, inputs, timeout=0.2)
        assert e.value.dump["STATUS"] & 1 and e.value.err_name == "NONE" and e.value.recovered
        assert set(e.value.dump) == {n for n, r in regmap_info.REGISTERS.items() if r.access != "w"}
        assert "STATUS=0x00000001" in str(e.value)
        assert d.regs.STATUS.read_fields()["BUSY"] == 0
        dev.hang = False  # the fault is gone: the same driver instance runs normally again
        out = d.run(lp, inputs, timeout=5)
        np.testing.assert_array_equal(out["y"], golden_run(prog, inputs).outputs["y"])


def test_watchdog_fault():
    with Device.open(GoldenTransport(GoldenDevice(1 << 20, hang=True, clock_hz=1_000_000))) as d:
        d.regs.WATCHDOG.write(20_000)  # 20 ms at 1 MHz
        with pytest.raises(DeviceFault) as e:
            d.run_raw(smoke.end_only(), 0x1000, 0x1000, timeout=5)
        assert e.value.name == "WATCHDOG"


def test_dma_window_fault():
    with Device.open("golden:?mem=1M") as d:
        win = d.memory.alloc(8192, 4096)
        d.transport.dma_write(win + 4096, b"\xaa" * 64)
        prog, off = smoke.window_violators(4096)["store_straddling"]
        with pytest.raises(DeviceFault) as e:
            d.run_raw(prog, win, 4096)
        assert (e.value.name, e.value.code, e.value.pc, e.value.address) == ("DMA_WINDOW", 4, 0, win + 4096)
        assert d.transport.dma_read(win + 4096, 64) == b"\xaa" * 64
        assert d.regs.IRQ_STATUS.read() == 0  # the driver cleared it


def test_illegal_opcode_fault():
    with Device.open("golden:?mem=1M") as d:
        with pytest.raises(DeviceFault, match="ILLEGAL_OPCODE"):
            d.run_raw([bytes([0x7F]) + bytes(31), smoke.end_only()[0]], 0, 4096)
        with pytest.raises(DeviceFault, match="CMD_OVERRUN"):
            d.run_raw([bytes(32)], 0, 4096)  # a NOP and no END


def test_allocator():
    m = DeviceMemory(0x1000, 0x10000)
    a = m.alloc(100, 256)
    b = m.alloc(0x1000, 4096)
    assert a == 0x1000 and b % 4096 == 0 and b >= a + 100
    with pytest.raises(DmaWindowError, match="largest free block"):
        m.alloc(0x10000)
    m.free(a)
    assert m.alloc(64, 64) == 0x1000  # first fit reuses the hole
    with pytest.raises(ValueError, match="double free"):
        m.free(0x5000)
    with pytest.raises(ValueError, match="power of two"):
        m.alloc(8, 3)
    m.free(b)
    m.free(0x1000)
    assert m.free_bytes() == 0x10000 and m.alloc(0x10000, 1) == 0x1000


def test_out_of_device_memory_on_load():
    prog, _ = smoke.conv_tile()
    with Device.open("golden:?mem=4K") as d:
        with pytest.raises(DmaWindowError, match="out of device memory"):
            d.load(prog)


def test_quantize_roundtrip():
    prog, _ = smoke.conv_tile()
    t = prog.tensor("x")
    x = np.linspace(-3, 3, int(np.prod(t.shape))).reshape(t.shape)
    q = quantize(x, t)
    assert q.dtype == np.int8 and np.abs(dequantize(q, t) - np.clip(x, dequantize(np.int8(-128), t),
                                                                     dequantize(np.int8(127), t))).max() <= t.scale


def _outputs_bytes(uri):
    prog, inputs = smoke.two_layer()
    with Device.open(uri) as d:
        lp = d.load(prog)
        out = d.run(lp, inputs)
        raw = d.transport.dma_read(lp.base, lp.size)
        return out["y"], raw, d.perf()


def test_same_program_golden_and_xdma_identical(xdma_uri):
    y1, raw1, p1 = _outputs_bytes("golden:")
    y2, raw2, p2 = _outputs_bytes(xdma_uri)
    assert raw1 == raw2 and np.array_equal(y1, y2)  # the whole window, byte for byte
    assert {k: v for k, v in p1.items() if k != "free_cycles"} == {k: v for k, v in p2.items() if k != "free_cycles"}


def test_runner_sync_and_async_in_order():
    prog, _ = smoke.conv_tile()
    rng = np.random.default_rng(5)
    xs = [rng.integers(-128, 128, prog.tensor("x").shape, dtype=np.int8) for _ in range(6)]
    refs = [golden_run(prog, {"x": x}).outputs["y"] for x in xs]
    with Device.open("golden:?mem=4M") as d:
        with Runner(d, prog) as r:
            np.testing.assert_array_equal(r.run({"x": xs[0]})["y"], refs[0])
            futs = [r.submit({"x": x}) for x in xs]
            for f, ref in zip(futs, refs):
                np.testing.assert_array_equal(f.result(10)["y"], ref)
            bad = r.submit({"x": np.zeros((1, 2, 2, 2), np.int8)})
            with pytest.raises(ValueError, match="expected int8"):
                bad.result(10)
            np.testing.assert_array_equal(r.submit({"x": xs[1]}).result(10)["y"], refs[1])
        assert d.memory.free_bytes() == 4 << 20


def test_runner_over_xdma(xdma_uri):
    prog, _ = smoke.conv_tile()
    rng = np.random.default_rng(6)
    xs = [rng.integers(-128, 128, prog.tensor("x").shape, dtype=np.int8) for _ in range(3)]
    with Device.open(xdma_uri) as d, Runner(d, prog) as r:
        for f, x in zip([r.submit({"x": x}) for x in xs], xs):
            np.testing.assert_array_equal(f.result(20)["y"], golden_run(prog, {"x": x}).outputs["y"])


def test_perf_counters_64bit():
    with Device.open("golden:?mem=1M") as d:
        d.transport.device.perf["BUSY_CYCLES"] = (5 << 32) | 7
        assert d.read64("BUSY_CYCLES") == (5 << 32) | 7
        a = d.perf()["free_cycles"]
        assert d.perf()["free_cycles"] > a
