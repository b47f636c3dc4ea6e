// Device memory for simulation: an AXI4 slave whose state lives here.
// rtl/sim/axi_mem.sv calls axi_mem_tick() once per clock edge with the
// master's signals and gets its own outputs for the next cycle; Python reaches
// the memory through the exported axi_mem_* functions (ctypes, tb/memory.py),
// so bulk data never goes through VPI and no Python runs per beat.
//
// Timing knobs: read latency (AR accept -> first R beat may be valid), write
// latency (last W beat -> B may be valid), the probability that a ready/valid
// the slave controls is withheld in a cycle (seeded xorshift, reproducible),
// and an address range answered with SLVERR (writes there are dropped). It
// also counts protocol violations the NPU must never make (axi_mem_violations).
#include <cstdint>
#include <cstring>
#include <deque>
#include <vector>
#include "svdpi.h"

namespace {

constexpr uint64_t kMemBytes = 64ull << 20;   // 64 MiB of device memory

struct Burst {
    uint32_t addr;    // beat-aligned start
    uint32_t beats;
    uint32_t done = 0;
    uint64_t ready_at = 0;
    bool err = false;
};

struct Mem {
    std::vector<uint8_t> bytes = std::vector<uint8_t>(kMemBytes);
    uint32_t rd_lat = 1, wr_lat = 1;
    uint32_t stall_ppm = 0;            // chance per cycle (parts per million) of withholding
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    uint64_t err_lo = 1, err_hi = 0;   // SLVERR range [lo, hi), empty by default
    uint64_t cycle = 0;
    std::deque<Burst> rq, wq, bq;      // reads, writes awaiting data, writes awaiting B
    // outputs registered for the current cycle
    bool arready = false, rvalid = false, awready = false, wready = false, bvalid = false;
    uint64_t beats_r = 0, beats_w = 0;
    uint64_t violations = 0;           // bursts > 16 beats or across 4 KiB, WLAST misplaced

    void check_burst(uint32_t addr, uint32_t beats) {
        if (beats > 16 || (addr & 0xFFFu) + 16u * beats > 4096u) ++violations;
    }

    bool stall() {
        if (!stall_ppm) return false;
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        return (rng % 1000000u) < stall_ppm;
    }
    bool bad(uint64_t a) const { return (a >= err_lo && a < err_hi) || a + 16 > kMemBytes; }
};

Mem& M() { static Mem m; return m; }

}  // namespace

extern "C" {

// ---- called from SystemVerilog every rising edge
void axi_mem_tick(svBit rst,
                  svBit arvalid, uint32_t araddr, uint8_t arlen, svBit rready,
                  svBit awvalid, uint32_t awaddr, uint8_t awlen,
                  svBit wvalid, const svBitVecVal* wdata, uint16_t wstrb, svBit wlast, svBit bready,
                  svBit* arready, svBit* rvalid, svBitVecVal* rdata, svBitVecVal* rresp, svBit* rlast,
                  svBit* awready, svBit* wready, svBit* bvalid, svBitVecVal* bresp) {
    Mem& m = M();
    if (rst) {
        m.rq.clear(); m.wq.clear(); m.bq.clear();
        m.arready = m.rvalid = m.awready = m.wready = m.bvalid = false;
    } else {
        ++m.cycle;
        // handshakes of the cycle that just ended (signals sampled before the edge)
        if (m.rvalid && rready) {
            Burst& b = m.rq.front();
            ++m.beats_r;
            if (++b.done == b.beats) m.rq.pop_front();
        }
        if (arvalid && m.arready) m.check_burst(araddr, uint32_t(arlen) + 1);
        if (awvalid && m.awready) m.check_burst(awaddr, uint32_t(awlen) + 1);
        if (arvalid && m.arready)
            m.rq.push_back(Burst{araddr & ~15u, uint32_t(arlen) + 1, 0, m.cycle + m.rd_lat});
        if (awvalid && m.awready) m.wq.push_back(Burst{awaddr & ~15u, uint32_t(awlen) + 1});
        if (wvalid && m.wready) {
            Burst& b = m.wq.front();
            uint64_t a = uint64_t(b.addr) + 16ull * b.done;
            ++m.beats_w;
            if (m.bad(a)) b.err = true;
            else
                for (int i = 0; i < 16; ++i)
                    if (wstrb >> i & 1) m.bytes[a + i] = uint8_t(wdata[i / 4] >> (8 * (i % 4)));
            if (bool(wlast) != (b.done + 1 == b.beats)) ++m.violations;
            if (++b.done == b.beats || wlast) {
                b.ready_at = m.cycle + m.wr_lat;
                m.bq.push_back(b);
                m.wq.pop_front();
            }
        }
        if (m.bvalid && bready) m.bq.pop_front();
        // outputs for the next cycle; a valid already shown stays until taken
        bool keep_r = m.rvalid && !rready;
        bool keep_b = m.bvalid && !bready;
        m.arready = m.rq.size() < 8 && !m.stall();
        m.awready = m.wq.size() < 8 && !m.stall();
        m.wready = !m.wq.empty() && !m.stall();
        m.rvalid = keep_r || (!m.rq.empty() && m.cycle >= m.rq.front().ready_at && !m.stall());
        m.bvalid = keep_b || (!m.bq.empty() && m.cycle >= m.bq.front().ready_at && !m.stall());
    }
    *arready = m.arready; *awready = m.awready; *wready = m.wready;
    *rvalid = m.rvalid; *bvalid = m.bvalid;
    rdata[0] = rdata[1] = rdata[2] = rdata[3] = 0;
    *rresp = 0; *rlast = 0;
    if (m.rvalid) {
        const Burst& b = m.rq.front();
        uint64_t a = uint64_t(b.addr) + 16ull * b.done;
        if (m.bad(a)) *rresp = 2;   // SLVERR
        else std::memcpy(rdata, &m.bytes[a], 16);
        *rlast = b.done + 1 == b.beats;
    }
    *bresp = (m.bvalid && m.bq.front().err) ? 2 : 0;
}

// ---- backdoor and configuration, called from Python through ctypes
__attribute__((visibility("default"))) uint64_t axi_mem_size() { return kMemBytes; }

__attribute__((visibility("default"))) int axi_mem_write(uint64_t addr, const uint8_t* src, uint64_t n) {
    if (addr + n > kMemBytes) return -1;
    std::memcpy(&M().bytes[addr], src, n);
    return 0;
}

__attribute__((visibility("default"))) int axi_mem_read(uint64_t addr, uint8_t* dst, uint64_t n) {
    if (addr + n > kMemBytes) return -1;
    std::memcpy(dst, &M().bytes[addr], n);
    return 0;
}

__attribute__((visibility("default"))) void axi_mem_fill(uint8_t value) {
    std::memset(M().bytes.data(), value, kMemBytes);
}

__attribute__((visibility("default"))) void axi_mem_config(uint32_t rd_lat, uint32_t wr_lat,
                                                             uint32_t stall_ppm, uint64_t seed) {
    Mem& m = M();
    m.rd_lat = rd_lat; m.wr_lat = wr_lat; m.stall_ppm = stall_ppm;
    m.rng = seed ? seed : 0x9E3779B97F4A7C15ull;
}

__attribute__((visibility("default"))) void axi_mem_error_range(uint64_t lo, uint64_t hi) {
    M().err_lo = lo; M().err_hi = hi;
}

__attribute__((visibility("default"))) uint64_t axi_mem_violations() { return M().violations; }

__attribute__((visibility("default"))) uint64_t axi_mem_beats(int write) {
    return write ? M().beats_w : M().beats_r;
}

}  // extern "C"
