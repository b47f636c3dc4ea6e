// Bare C++ harness for npu_array (16x16 by default): the speed reference that
// the `sim:` co-simulation of npu_top is compared with (benchmarks/cosim_bench.py).
// Loads one weight tile, then streams a new pixel every cycle (a weight swap
// every 256 pixels, the next tile loading meanwhile, as the GEMM controller
// does), folds every output word into a checksum so that nothing is optimised
// away, and prints cycles/s.
//   usage: array_bench CYCLES
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "Vnpu_array.h"
#include "verilated.h"

int main(int argc, char** argv) {
    const uint64_t cycles = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : 2000000;
    auto ctx = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vnpu_array>(ctx.get());
    uint64_t rng = 0x243F6A8885A308D3ull;
    auto next = [&rng]() {
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        return rng;
    };
    auto tick = [&]() {
        top->clk = 1; top->eval();
        top->clk = 0; top->eval();
    };
    top->clk = 0;
    top->rst_n = 0;
    for (int i = 0; i < 4; ++i) tick();
    top->rst_n = 1;
    constexpr int kRows = sizeof(top->in_act);   // one int8 lane per row: bytes of in_act = ROWS
    uint64_t outputs = 0, check = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (uint64_t c = 0; c < cycles; ++c) {
        const uint64_t phase = c % 256;
        // weight row (phase % ROWS) of the next tile during the first ROWS cycles of each 256
        top->w_valid = phase < uint64_t(kRows);
        top->w_row = phase % kRows;
        for (size_t i = 0; i < sizeof(top->w_data) / 4; ++i) top->w_data[i] = uint32_t(next());
        top->in_valid = c >= uint64_t(kRows);
        top->in_swap = phase == uint64_t(kRows);
        for (size_t i = 0; i < sizeof(top->in_act) / 4; ++i) top->in_act[i] = uint32_t(next());
        tick();
        if (top->out_valid) {
            ++outputs;
            check += top->out_psum[0] ^ top->out_psum[15];
        }
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    top->final();
    std::printf("cycles=%llu seconds=%.6f cycles_per_s=%.0f outputs=%llu check=%llx\n",
                static_cast<unsigned long long>(cycles), s, cycles / s, static_cast<unsigned long long>(outputs),
                static_cast<unsigned long long>(check));
    return outputs > 0 ? 0 : 1;
}
