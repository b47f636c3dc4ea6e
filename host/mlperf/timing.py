"""The timing model behind the estimate backend: PCIe transfers and the
device queue. Pure and deterministic (no clocks here), so tests can compute
the expected latencies with the same parameters.

Per sample, four stages, each a resource that serves one job at a time in
arrival order:

    host   driver + pre/post-processing on the host CPU      host_overhead_s
    h2d    input bytes over PCIe into device memory           PcieLink.transfer_s(in_bytes)
    npu    doorbell + program + completion                    launch_s + cycles / clock_hz
    d2h    output bytes back over PCIe                        PcieLink.transfer_s(out_bytes)

With `dma_overlap` (the default) h2d, npu and d2h are separate resources with
two buffers each: the input copy of sample i+1 overlaps the program of sample
i. This is allowed by the architecture because the host's copies go to device
DDR through the board's PCIe DMA, independently of the NPU's command
processor, and each job's window is its own buffer; the double buffering
bounds how far ahead a copy may run (h2d of i waits until the program of
i-2 has finished with its buffer; the program of i waits until d2h of i-2
has drained its output buffer). Without overlap, h2d+npu+d2h is one resource.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import asdict, dataclass, field

# Per-lane signalling rate (GT/s) and line-code efficiency of each generation.
# Gen1/2: 8b/10b; Gen3-5: 128b/130b; Gen6: PAM4 FLIT mode, 242 payload of 256 bytes.
PCIE_GENERATIONS = {
    1: (2.5e9, 8 / 10), 2: (5.0e9, 8 / 10), 3: (8.0e9, 128 / 130), 4: (16.0e9, 128 / 130),
    5: (32.0e9, 128 / 130), 6: (64.0e9, 242 / 256),
}
# Protocol efficiency on top of the line code: with a 256-byte max payload a
# TLP carries 256 of ~280 bytes (header, sequence number, LCRC, framing:
# 0.91), and DLLP ACK/flow-control traffic plus DMA descriptor fetches take a
# few percent more. Published XDMA/QDMA figures on Gen3 x8 are 6.3-7.0 GB/s
# of the 7.88 GB/s line rate, i.e. ~0.8-0.89; we assume the lower end.
DEFAULT_PCIE_EFFICIENCY = 0.80
# Fixed cost per DMA transfer: descriptor write, doorbell, the first TLP's
# round trip and the completion write-back/poll. Assumption, ~2 us (typical
# XDMA small-transfer latency on a host with its IOMMU in passthrough).
DEFAULT_TRANSFER_LATENCY_S = 2.0e-6
# Starting a program: MMIO doorbell write (posted) + completion noticed by
# polling STATUS. Assumption, 1 us.
DEFAULT_LAUNCH_S = 1.0e-6


@dataclass(frozen=True)
class PcieLink:
    generation: int = 3
    lanes: int = 8
    efficiency: float = DEFAULT_PCIE_EFFICIENCY
    latency_s: float = DEFAULT_TRANSFER_LATENCY_S

    @classmethod
    def parse(cls, spec: str, **kw) -> "PcieLink":
        """'gen3x8' / 'Gen4 x16' / '3x8' -> PcieLink."""
        m = re.fullmatch(r"\s*(?:gen)?\s*(\d)\s*x\s*(\d+)\s*", spec, re.IGNORECASE)
        if not m or int(m.group(1)) not in PCIE_GENERATIONS or int(m.group(2)) not in (1, 2, 4, 8, 16):
            raise ValueError(f"PCIe link {spec!r}: expected genNxL with N in 1..6 and L in 1,2,4,8,16")
        return cls(int(m.group(1)), int(m.group(2)), **kw)

    @property
    def line_rate_bytes_s(self) -> float:
        gt, code = PCIE_GENERATIONS[self.generation]
        return gt * code / 8 * self.lanes

    @property
    def bandwidth_bytes_s(self) -> float:
        """Effective one-direction bandwidth (the link is full duplex)."""
        return self.line_rate_bytes_s * self.efficiency

    def transfer_s(self, nbytes: int) -> float:
        return self.latency_s + nbytes / self.bandwidth_bytes_s if nbytes > 0 else 0.0

    def __str__(self) -> str:
        return (f"PCIe Gen{self.generation} x{self.lanes}: {self.line_rate_bytes_s / 1e9:.2f} GB/s line rate x "
                f"{self.efficiency:.2f} efficiency = {self.bandwidth_bytes_s / 1e9:.2f} GB/s per direction, "
                f"+{self.latency_s * 1e6:.1f} us per transfer")


@dataclass(frozen=True)
class TimingModel:
    """Everything the estimate assumes, in one JSON-able record."""

    cycles: int  # device cycles per sample (all NPU segments)
    in_bytes: int  # host -> device bytes per sample
    out_bytes: int  # device -> host bytes per sample
    clock_hz: float = 1e9
    link: PcieLink = field(default_factory=PcieLink)
    host_overhead_s: float = 0.0
    launch_s: float = DEFAULT_LAUNCH_S
    dma_overlap: bool = True
    cycles_source: str = "model"  # "model" (ISS cost model) or "rtl" (measured)
    array: str = "16x16"
    transfers_per_sample: int = 1  # NPU segments: each moves its own inputs/outputs

    # -- stage durations (seconds) ------------------------------------------
    @property
    def compute_s(self) -> float:
        return self.transfers_per_sample * self.launch_s + self.cycles / self.clock_hz

    @property
    def h2d_s(self) -> float:
        return self.link.transfer_s(self.in_bytes) + (self.transfers_per_sample - 1) * self.link.latency_s

    @property
    def d2h_s(self) -> float:
        return self.link.transfer_s(self.out_bytes) + (self.transfers_per_sample - 1) * self.link.latency_s

    def stages(self) -> list[float]:
        """[host, h2d, npu, d2h] with overlap, [host, device] without."""
        if self.dma_overlap:
            return [self.host_overhead_s, self.h2d_s, self.compute_s, self.d2h_s]
        return [self.host_overhead_s, self.h2d_s + self.compute_s + self.d2h_s]

    @property
    def latency_s(self) -> float:
        """One sample alone (SingleStream): every stage in sequence."""
        return sum(self.stages())

    @property
    def throughput(self) -> float:
        """Samples/s in steady state: the slowest stage."""
        return 1.0 / max(self.stages())

    def batch_latency_s(self, n: int) -> float:
        """n samples arriving together: fill + (n-1) x the bottleneck (holds
        for this linear pipeline with double buffers)."""
        return self.latency_s + (n - 1) * max(self.stages())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["link"] = asdict(self.link)
        d.update(latency_s=self.latency_s, throughput_samples_s=self.throughput,
                 compute_s=self.compute_s, h2d_s=self.h2d_s, d2h_s=self.d2h_s,
                 link_bandwidth_bytes_s=self.link.bandwidth_bytes_s)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TimingModel":
        keep = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        keep["link"] = PcieLink(**d["link"]) if isinstance(d.get("link"), dict) else d.get("link", PcieLink())
        return cls(**keep)

    def assumptions(self) -> str:
        return (f"{self.cycles} device cycles/sample ({self.cycles_source}) at {self.clock_hz / 1e9:g} GHz, "
                f"array {self.array}; {self.link}; {self.in_bytes} B in / {self.out_bytes} B out per sample; "
                f"launch {self.launch_s * 1e6:.1f} us; host overhead {self.host_overhead_s * 1e6:.1f} us/sample; "
                f"DMA overlap {'on' if self.dma_overlap else 'off'}; device alone (no host stage): "
                f"{self.device_latency_s * 1e6:.2f} us/sample, {self.device_throughput:,.0f} samples/s")

    @property
    def device_latency_s(self) -> float:
        return sum(self.stages()[1:])

    @property
    def device_throughput(self) -> float:
        return 1.0 / max(self.stages()[1:])


class DeviceQueue:
    """The stage pipeline in arbitrary time units: `schedule(arrival)` returns
    the completion time of the next sample (samples in arrival order)."""

    BUFFERS = 2

    def __init__(self, stages: list[float], overlap: bool):
        self.stages = list(stages)
        self.overlap = overlap
        self.free = [0.0] * len(stages)  # when each stage is next free
        # Per stage, the end times of the last BUFFERS jobs (oldest first).
        self.recent: list[deque] = [deque(maxlen=self.BUFFERS) for _ in stages]
        self.jobs = 0

    def schedule(self, arrival: float) -> float:
        t = arrival
        full = self.overlap and self.jobs >= self.BUFFERS
        ends = []
        for s, dur in enumerate(self.stages):
            start = max(t, self.free[s])
            if full and 1 <= s < len(self.stages) - 1:
                # Double buffering: h2d (s=1) needs the npu (s=2) done with job
                # i-2's input buffer; the npu needs d2h done with its output.
                start = max(start, self.recent[s + 1][0])
            t = start + dur
            self.free[s] = t
            ends.append(t)
        for s, e in enumerate(ends):
            self.recent[s].append(e)
        self.jobs += 1
        return t
