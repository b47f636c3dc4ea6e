// Stand-alone co-simulation server for the `sim:` device (presil.host.transport.sim).
//
// npu_top (through rtl/sim/npu_cosim_top.sv, memory = axi_mem + axi_mem_dpi.cpp)
// runs in this process; the host driver talks to it over a private Unix socket
// with length-prefixed binary frames, the way it talks to a board through the
// PCIe bridge: 32-bit register accesses (driven on the AXI4-Lite port here,
// cycle by cycle), DMA (memcpy into/out of the C++ memory model), interrupt
// wait, reset. No Python and no cocotb run in here.
//
// Frames (little-endian):
//   request  : u32 len, u32 op,     len bytes of payload
//   response : u32 len, u32 status, len bytes (status 0 = ok, else an error
//              kind and the payload is a UTF-8 message)
// The first request must be HELLO (versioned handshake); see host/transport/sim.py.
//
// Time model: simulated time advances only when something needs it -
//   * a register access costs the bridge's latency (--bridge-cycles, idle cycles
//     before the access: the request crossing PCIe and the bridge) plus the
//     cycles of its AXI4-Lite handshake;
//   * WAIT_IRQ runs the clock until an interrupt edge, a cycle limit or a wall
//     time limit, whichever comes first;
//   * while the NPU is BUSY and no request is waiting, the clock runs in the
//     background (the device works while the host does something else);
//   * RUN advances a given number of cycles; RESET holds rst_n low for some.
// DMA through the bridge is a backdoor copy and costs no simulated cycles.
// When the NPU is idle and no request is waiting the process sleeps in poll().
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "Vnpu_cosim_top.h"
#include "verilated.h"
#if VM_TRACE
#include "verilated_fst_c.h"
#endif

// The memory model's backdoor (rtl/sim/axi_mem_dpi.cpp).
extern "C" {
uint64_t axi_mem_size();
int axi_mem_write(uint64_t addr, const uint8_t* src, uint64_t n);
int axi_mem_read(uint64_t addr, uint8_t* dst, uint64_t n);
void axi_mem_config(uint32_t rd_lat, uint32_t wr_lat, uint32_t stall_ppm, uint64_t seed);
void axi_mem_error_range(uint64_t lo, uint64_t hi);
uint64_t axi_mem_violations();
uint64_t axi_mem_beats(int write);
}

// Register offsets come from the register map through the builder (-D...), so
// the harness never carries its own copy of them.
#ifndef REG_MAGIC
#error "build through presil.host.simbuild: REG_* offsets are passed as defines"
#endif

namespace {

constexpr uint32_t kProtocol = 1;
constexpr uint32_t kMaxFrame = 1u << 30;       // refuse absurd lengths rather than allocate them
constexpr int kAxilMaxCycles = 10000;          // a register access that takes longer is a hung bus
constexpr int kResetCycles = 8;

enum Op : uint32_t { HELLO = 1, READ32, WRITE32, DMA_WRITE, DMA_READ, WAIT_IRQ, RESET, INFO, SHUTDOWN, RUN,
                     MEM_CONFIG };
enum Status : uint32_t { OK = 0, ERR_PROTOCOL = 1, ERR_MISMATCH = 2, ERR_RANGE = 3, ERR_BUS = 4 };

using Clock = std::chrono::steady_clock;

struct Options {
    std::string socket_path, waves;
    uint32_t rd_lat = 1, wr_lat = 1, stall_ppm = 0;
    uint32_t bridge_cycles = 16;       // 80 ns at 200 MHz: cheaper than a real PCIe read (~1 us)
    uint64_t seed = 1;
    bool persist = false;              // keep serving after a client leaves (attach mode)
    int accept_timeout_s = 120;        // no client at all -> exit, never orphaned forever
};

struct Sim {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<Vnpu_cosim_top> top;
#if VM_TRACE
    std::unique_ptr<VerilatedFstC> tfp;
#endif
    uint64_t cycle = 0, irq_events = 0, clocked_ns = 0;
    bool irq_prev = false;
    uint32_t magic = 0, regmap_hash = 0, isa_hash = 0, clock_hz = 0, hw_array = 0;
    uint32_t bridge_cycles = 0;

    explicit Sim(const Options& o) : ctx(new VerilatedContext) {
        ctx->traceEverOn(!o.waves.empty());
        top.reset(new Vnpu_cosim_top(ctx.get()));
#if VM_TRACE
        if (!o.waves.empty()) {
            tfp.reset(new VerilatedFstC);
            top->trace(tfp.get(), 99);
            tfp->open(o.waves.c_str());
        }
#endif
        axi_mem_config(o.rd_lat, o.wr_lat, o.stall_ppm, o.seed);
        power_on_reset(kResetCycles);
        bridge_cycles = o.bridge_cycles;   // after the reset: the harness's own ID reads are free
    }

    ~Sim() {
#if VM_TRACE
        if (tfp) tfp->close();
#endif
        top->final();
    }

    void dump(uint64_t t) {
#if VM_TRACE
        if (tfp) tfp->dump(t);
#else
        (void)t;
#endif
    }

    // One clock period; inputs were set (and evaluated) before the rising edge.
    inline void tick() {
        top->clk = 1;
        top->eval();
        dump(2 * cycle + 1);
        top->clk = 0;
        top->eval();
        dump(2 * cycle + 2);
        ++cycle;
        const bool line = top->irq;
        if (line && !irq_prev) ++irq_events;   // an MSI-like event per rising edge
        irq_prev = line;
    }

    // Runs up to `n` cycles, stopping early at an interrupt edge if asked; keeps
    // the time spent clocking for the cycles/s figures.
    uint64_t run(uint64_t n, bool until_irq, double wall_s) {
        const auto t0 = Clock::now();
        uint64_t done = 0;
        while (done < n && !(until_irq && irq_events)) {
            const uint64_t chunk = std::min<uint64_t>(n - done, 4096);
            uint64_t i = 0;
            for (; i < chunk && !(until_irq && irq_events); ++i) tick();
            done += i;
            if (wall_s >= 0 && std::chrono::duration<double>(Clock::now() - t0).count() >= wall_s) break;
        }
        clocked_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
        return done;
    }

    void idle_inputs() {
        top->s_axil_awvalid = 0; top->s_axil_wvalid = 0; top->s_axil_bready = 0;
        top->s_axil_arvalid = 0; top->s_axil_rready = 0; top->s_axil_wstrb = 0;
    }

    void power_on_reset(int cycles) {
        idle_inputs();
        top->clk = 0;
        top->rst_n = 0;
        top->eval();
        for (int i = 0; i < cycles; ++i) tick();
        top->rst_n = 1;
        top->eval();
        tick();
        tick();
        irq_events = 0;
        irq_prev = top->irq;
        std::string err;
        reg_read(REG_MAGIC, magic, err);
        reg_read(REG_REGMAP_HASH, regmap_hash, err);
        reg_read(REG_ISA_HASH, isa_hash, err);
        reg_read(REG_HW_CLOCK_HZ, clock_hz, err);
        reg_read(REG_HW_ARRAY, hw_array, err);
    }

    // AXI4-Lite read: AR then R, one cycle at a time. A handshake happens at the
    // edge where valid and ready were both high, so both are sampled before tick().
    bool reg_read(uint32_t addr, uint32_t& value, std::string& err) {
        run(bridge_cycles, false, -1);
        top->s_axil_araddr = addr & 0xFFF;
        top->s_axil_arvalid = 1;
        top->s_axil_rready = 1;
        for (int n = 0; n < kAxilMaxCycles; ++n) {
            top->eval();
            const bool ar = top->s_axil_arvalid && top->s_axil_arready;
            const bool r = top->s_axil_rvalid && top->s_axil_rready;
            if (r) value = top->s_axil_rdata;
            tick();
            if (ar) top->s_axil_arvalid = 0;
            if (r) {
                top->s_axil_rready = 0;
                top->eval();
                return true;
            }
        }
        idle_inputs();
        err = "AXI4-Lite read of 0x" + hex(addr) + " got no response in " + std::to_string(kAxilMaxCycles) +
              " cycles";
        return false;
    }

    bool reg_write(uint32_t addr, uint32_t value, std::string& err) {
        run(bridge_cycles, false, -1);
        top->s_axil_awaddr = addr & 0xFFF;
        top->s_axil_awvalid = 1;
        top->s_axil_wdata = value;
        top->s_axil_wstrb = 0xF;
        top->s_axil_wvalid = 1;
        top->s_axil_bready = 1;
        for (int n = 0; n < kAxilMaxCycles; ++n) {
            top->eval();
            const bool aw = top->s_axil_awvalid && top->s_axil_awready;
            const bool w = top->s_axil_wvalid && top->s_axil_wready;
            const bool b = top->s_axil_bvalid && top->s_axil_bready;
            tick();
            if (aw) top->s_axil_awvalid = 0;
            if (w) top->s_axil_wvalid = 0;
            if (b) {
                top->s_axil_bready = 0;
                top->eval();
                return true;
            }
        }
        idle_inputs();
        err = "AXI4-Lite write of 0x" + hex(addr) + " got no response in " + std::to_string(kAxilMaxCycles) +
              " cycles";
        return false;
    }

    static std::string hex(uint64_t v) {
        char b[24];
        std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(v));
        return b;
    }
};

// ---- socket plumbing --------------------------------------------------------------
bool read_full(int fd, void* buf, size_t n) {
    auto* p = static_cast<uint8_t*>(buf);
    while (n) {
        const ssize_t k = ::recv(fd, p, n, 0);
        if (k == 0) return false;
        if (k < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += k;
        n -= size_t(k);
    }
    return true;
}

bool write_full(int fd, const void* buf, size_t n) {
    auto* p = static_cast<const uint8_t*>(buf);
    while (n) {
        const ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += k;
        n -= size_t(k);
    }
    return true;
}

template <class T> void put(std::vector<uint8_t>& v, T x) {
    const auto* p = reinterpret_cast<const uint8_t*>(&x);
    v.insert(v.end(), p, p + sizeof x);
}

template <class T> T get(const std::vector<uint8_t>& v, size_t off) {
    T x{};
    if (off + sizeof x <= v.size()) std::memcpy(&x, v.data() + off, sizeof x);
    return x;
}

bool reply(int fd, uint32_t status, const uint8_t* data, size_t n) {
    uint32_t hdr[2] = {uint32_t(n), status};
    return write_full(fd, hdr, sizeof hdr) && (n == 0 || write_full(fd, data, n));
}
bool reply(int fd, const std::vector<uint8_t>& v) { return reply(fd, OK, v.data(), v.size()); }
bool reply_err(int fd, uint32_t status, const std::string& msg) {
    return reply(fd, status, reinterpret_cast<const uint8_t*>(msg.data()), msg.size());
}

int listen_on(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (fd < 0 || path.size() >= sizeof a.sun_path) {
        std::fprintf(stderr, "cosim: cannot create socket %s\n", path.c_str());
        std::exit(3);
    }
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    ::unlink(path.c_str());
    const mode_t old = ::umask(077);                   // created 0600: only this user may connect
    const int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::umask(old);
    if (rc != 0 || ::chmod(path.c_str(), 0600) != 0 || ::listen(fd, 1) != 0) {
        std::fprintf(stderr, "cosim: bind/listen on %s failed: %s\n", path.c_str(), std::strerror(errno));
        std::exit(3);
    }
    return fd;
}

// ---- the server ---------------------------------------------------------------------
class Server {
public:
    Server(Sim& sim, const Options& o) : sim_(sim), opt_(o) {}

    // Serves one client; returns false when the process should exit.
    bool serve(int fd) {
        hello_done_ = false;
        std::vector<uint8_t> req;
        for (;;) {
            // Background clock while the NPU is busy; otherwise sleep until a request.
            pollfd p{fd, POLLIN, 0};
            const bool busy = sim_.top->busy;
            const int rc = ::poll(&p, 1, busy ? 0 : -1);
            if (rc < 0 && errno == EINTR) continue;
            if (rc == 0) {
                sim_.run(256, false, -1);   // short slices: a request waits < 1 ms
                continue;
            }
            uint32_t hdr[2];
            if (!read_full(fd, hdr, sizeof hdr)) return opt_.persist;   // client gone
            if (hdr[0] > kMaxFrame) {
                reply_err(fd, ERR_PROTOCOL, "frame of " + std::to_string(hdr[0]) + " bytes refused");
                return opt_.persist;
            }
            req.resize(hdr[0]);
            if (hdr[0] && !read_full(fd, req.data(), hdr[0])) return opt_.persist;
            bool keep = true;
            if (!handle(fd, hdr[1], req, keep)) return opt_.persist;   // send failed
            if (!keep) return false;
        }
    }

private:
    Sim& sim_;
    const Options& opt_;
    bool hello_done_ = false;
    std::vector<uint8_t> buf_;

    bool handle(int fd, uint32_t op, const std::vector<uint8_t>& q, bool& keep) {
        if (!hello_done_ && op != HELLO)
            return reply_err(fd, ERR_PROTOCOL, "the first request must be HELLO (versioned handshake)");
        std::vector<uint8_t> out;
        std::string err;
        switch (op) {
        case HELLO: {
            const uint32_t proto = get<uint32_t>(q, 0), rh = get<uint32_t>(q, 4), ih = get<uint32_t>(q, 8);
            if (proto != kProtocol)
                return reply_err(fd, ERR_MISMATCH, "protocol version " + std::to_string(proto) +
                                 " requested, this simulator speaks version " + std::to_string(kProtocol) +
                                 " (rebuild it from the same presil checkout)");
            if (rh != sim_.regmap_hash || ih != sim_.isa_hash)
                return reply_err(fd, ERR_MISMATCH, "refused: the host expects REGMAP_HASH 0x" + Sim::hex(rh) +
                                 " / ISA_HASH 0x" + Sim::hex(ih) + ", this simulator's RTL reports REGMAP_HASH 0x" +
                                 Sim::hex(sim_.regmap_hash) + " / ISA_HASH 0x" + Sim::hex(sim_.isa_hash) +
                                 " (the simulator was built from another npu_regs.rdl or isa.toml: rebuild it)");
            hello_done_ = true;
            put<uint32_t>(out, kProtocol);
            put<uint32_t>(out, sim_.magic);
            put<uint32_t>(out, sim_.regmap_hash);
            put<uint32_t>(out, sim_.isa_hash);
            put<uint32_t>(out, sim_.clock_hz);
            put<uint32_t>(out, sim_.hw_array);
            put<uint64_t>(out, opt_.seed);
            put<uint64_t>(out, axi_mem_size());
            put<uint32_t>(out, opt_.rd_lat);
            put<uint32_t>(out, opt_.wr_lat);
            put<uint32_t>(out, opt_.stall_ppm);
            put<uint32_t>(out, uint32_t(::getpid()));
            put<uint32_t>(out, opt_.bridge_cycles);
            put<uint64_t>(out, sim_.cycle);
#if VM_TRACE
            const std::string waves = opt_.waves;
#else
            const std::string waves;
#endif
            out.insert(out.end(), waves.begin(), waves.end());
            return reply(fd, out);
        }
        case READ32: {
            uint32_t v = 0;
            if (!sim_.reg_read(get<uint32_t>(q, 0), v, err)) return reply_err(fd, ERR_BUS, err);
            put<uint32_t>(out, v);
            return reply(fd, out);
        }
        case WRITE32:
            if (!sim_.reg_write(get<uint32_t>(q, 0), get<uint32_t>(q, 4), err)) return reply_err(fd, ERR_BUS, err);
            return reply(fd, out);
        case DMA_WRITE: {
            const uint64_t addr = get<uint64_t>(q, 0), n = q.size() >= 8 ? q.size() - 8 : 0;
            if (q.size() < 8 || axi_mem_write(addr, q.data() + 8, n) != 0)
                return reply_err(fd, ERR_RANGE, range_msg(addr, n));
            return reply(fd, out);
        }
        case DMA_READ: {
            const uint64_t addr = get<uint64_t>(q, 0), n = get<uint64_t>(q, 8);
            if (n > kMaxFrame) return reply_err(fd, ERR_RANGE, range_msg(addr, n));
            buf_.resize(n);
            if (axi_mem_read(addr, buf_.data(), n) != 0) return reply_err(fd, ERR_RANGE, range_msg(addr, n));
            return reply(fd, OK, buf_.data(), n);
        }
        case WAIT_IRQ: {
            const uint64_t max_cycles = get<uint64_t>(q, 0);
            const double wall_s = get<uint32_t>(q, 8) / 1000.0;
            const uint64_t c0 = sim_.cycle;
            if (!sim_.irq_events && max_cycles) sim_.run(max_cycles, true, wall_s);
            put<uint64_t>(out, sim_.irq_events);     // consumed, like a read of an XDMA event node
            put<uint64_t>(out, sim_.cycle - c0);
            sim_.irq_events = 0;
            return reply(fd, out);
        }
        case RUN:
            sim_.run(get<uint64_t>(q, 0), false, -1);
            put<uint64_t>(out, sim_.cycle);
            return reply(fd, out);
        case RESET:
            sim_.power_on_reset(std::max<int>(kResetCycles, int(get<uint32_t>(q, 0))));
            return reply(fd, out);
        case INFO:
            put<uint64_t>(out, sim_.cycle);
            put<uint64_t>(out, sim_.clocked_ns);
            put<uint64_t>(out, sim_.irq_events);
            put<uint64_t>(out, uint64_t(sim_.top->irq) | uint64_t(sim_.top->busy) << 1);
            put<uint64_t>(out, axi_mem_beats(0));
            put<uint64_t>(out, axi_mem_beats(1));
            put<uint64_t>(out, axi_mem_violations());
            return reply(fd, out);
        case MEM_CONFIG:
            axi_mem_config(get<uint32_t>(q, 0), get<uint32_t>(q, 4), get<uint32_t>(q, 8), get<uint64_t>(q, 12));
            axi_mem_error_range(get<uint64_t>(q, 20), get<uint64_t>(q, 28));
            return reply(fd, out);
        case SHUTDOWN:
            keep = false;
            return reply(fd, out);
        default:
            return reply_err(fd, ERR_PROTOCOL, "unknown request " + std::to_string(op));
        }
    }

    static std::string range_msg(uint64_t addr, uint64_t n) {
        return "device memory access [0x" + Sim::hex(addr) + ", 0x" + Sim::hex(addr + n) + ") outside the 0x" +
               Sim::hex(axi_mem_size()) + "-byte device memory";
    }
};

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) { std::fprintf(stderr, "cosim: %s needs a value\n", a.c_str()); std::exit(2); }
            return argv[++i];
        };
        if (a == "--socket") o.socket_path = val();
        else if (a == "--rd-latency") o.rd_lat = uint32_t(std::stoul(val()));
        else if (a == "--wr-latency") o.wr_lat = uint32_t(std::stoul(val()));
        else if (a == "--stall-ppm") o.stall_ppm = uint32_t(std::stoul(val()));
        else if (a == "--seed") o.seed = std::stoull(val());
        else if (a == "--bridge-cycles") o.bridge_cycles = uint32_t(std::stoul(val()));
        else if (a == "--waves") o.waves = val();
        else if (a == "--persist") o.persist = true;
        else if (a == "--accept-timeout") o.accept_timeout_s = std::stoi(val());
        else if (a.rfind("+", 0) == 0) continue;      // Verilator plusargs
        else { std::fprintf(stderr, "cosim: unknown argument %s\n", a.c_str()); std::exit(2); }
    }
    if (o.socket_path.empty()) { std::fprintf(stderr, "cosim: --socket PATH is required\n"); std::exit(2); }
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    ::signal(SIGPIPE, SIG_IGN);
    const Options opt = parse(argc, argv);
#if !VM_TRACE
    if (!opt.waves.empty()) {
        std::fprintf(stderr, "cosim: --waves needs the waves build (sim:?waves=fst)\n");
        return 2;
    }
#endif
    Sim sim(opt);
    const int lfd = listen_on(opt.socket_path);
    std::printf("presil-cosim ready: socket %s pid %d protocol %u regmap 0x%08x isa 0x%08x clock %u Hz seed %llu\n",
                opt.socket_path.c_str(), int(::getpid()), kProtocol, sim.regmap_hash, sim.isa_hash, sim.clock_hz,
                static_cast<unsigned long long>(opt.seed));
    std::fflush(stdout);
    Server server(sim, opt);
    for (;;) {
        pollfd p{lfd, POLLIN, 0};
        const int rc = ::poll(&p, 1, opt.persist ? -1 : opt.accept_timeout_s * 1000);
        if (rc < 0 && errno == EINTR) continue;
        if (rc == 0) {
            std::fprintf(stderr, "cosim: no client within %d s, exiting\n", opt.accept_timeout_s);
            break;
        }
        const int cfd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
        if (cfd < 0) continue;
        const bool again = server.serve(cfd);
        ::close(cfd);
        if (!again) break;
    }
    ::close(lfd);
    ::unlink(opt.socket_path.c_str());
    std::printf("presil-cosim exit: %llu cycles simulated\n", static_cast<unsigned long long>(sim.cycle));
    return 0;
}
