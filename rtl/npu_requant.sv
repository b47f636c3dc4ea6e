// npu_requant: the POST requantisation datapath, COLS lanes, fully pipelined.
//
// Per lane c, for every input word (presil.golden.arith is the definition):
//   v  = wrap32(acc[c] + bias[c])
//   ts = 31 - shift[c]                                  1 .. 62
//   r  = (v * mult[c] + 2^(ts-1)) >>> ts                ONE rounding, ties toward +inf
//   y  = saturate32(r)
//   q  = clamp(y + out_zp, clamp_min, clamp_max)        int8
// This is TFLite's single-rounding MultiplyByQuantizedMultiplier: no
// intermediate SRDHM rounding, no separate rounding right shift.
//
// Interface: in_valid + COLS x (acc, bias, mult: int32; shift: signed 6-bit,
// valid range [-31, 30], the engine rejects others as BAD_FIELD) + per-word
// out_zp, clamp_min, clamp_max (int8; clamp_min <= clamp_max). Lane c of a
// vector is bits [W*c +: W]. All parameters travel with their word down the
// pipeline, so consecutive words (e.g. two POST instructions back to back)
// may use different parameters.
//
// Timing: a word presented in cycle t appears on out_valid/out_q in cycle
// t + LATENCY, LATENCY = 6 (= [cost] post_pipeline in isa.toml); one word
// per cycle, bubbles preserved.
//
// Stages: 1 bias add + shift decode, 2 32x32 -> 64 multiply (+ rounding
// constant decode), 3 add the rounding constant, 4 arithmetic right shift,
// 5 saturate to int32, 6 zero point + clamp.
module npu_requant #(
    parameter  int COLS = 16,
    localparam int LATENCY = 6
) (
    input  logic                clk,
    input  logic                rst_n,
    input  logic                in_valid,
    input  logic [COLS*32-1:0]  in_acc,
    input  logic [COLS*32-1:0]  in_bias,
    input  logic [COLS*32-1:0]  in_mult,
    input  logic [COLS*6-1:0]   in_shift,
    input  logic signed [7:0]   out_zp,
    input  logic signed [7:0]   clamp_min,
    input  logic signed [7:0]   clamp_max,
    output logic                out_valid,
    output logic [COLS*8-1:0]   out_q
);
    localparam logic signed [31:0] I32_MAX = 32'sh7fff_ffff;
    localparam logic signed [31:0] I32_MIN = 32'sh8000_0000;

    // ---- per-word control: valid and the scalars, one register per stage ----
    logic [LATENCY-1:0] valid_d;
    logic signed [7:0]  zp_d   [LATENCY-1];
    logic signed [7:0]  cmin_d [LATENCY-1];
    logic signed [7:0]  cmax_d [LATENCY-1];

    always_ff @(posedge clk) begin
        if (!rst_n) valid_d <= '0;
        else        valid_d <= {valid_d[LATENCY-2:0], in_valid};
    end
    // Every data register below loads only when its stage receives a valid
    // word (a clock enable): outputs are only meaningful with out_valid, and
    // an idle pipeline then costs neither power nor simulation time.
    always_ff @(posedge clk) begin
        if (in_valid) begin
            zp_d[0]   <= out_zp;
            cmin_d[0] <= clamp_min;
            cmax_d[0] <= clamp_max;
        end
        for (int i = 1; i < LATENCY - 1; i++) begin
            if (valid_d[i-1]) begin
                zp_d[i]   <= zp_d[i-1];
                cmin_d[i] <= cmin_d[i-1];
                cmax_d[i] <= cmax_d[i-1];
            end
        end
    end
    assign out_valid = valid_d[LATENCY-1];

    // ---- lanes -----------------------------------------------------------
    for (genvar c = 0; c < COLS; c++) begin : g_lane
        logic signed [31:0] acc, bias, mult;
        logic signed [5:0]  shift;
        assign acc   = in_acc[32*c +: 32];
        assign bias  = in_bias[32*c +: 32];
        assign mult  = in_mult[32*c +: 32];
        assign shift = in_shift[6*c +: 6];

        // Stage 1: wrapping bias add; total shift ts = 31 - shift. The true
        // value lies in [1, 62], so 6-bit modular arithmetic gives it exactly.
        logic signed [31:0] v1, m1;
        logic [5:0]         ts1;
        always_ff @(posedge clk) begin
            if (in_valid) begin
                v1  <= acc + bias;                   // int32 wrap, as ACC + bias'
                m1  <= mult;
                ts1 <= 6'd31 - shift;
            end
        end

        // Stage 2: the 32x32 -> 64 signed product (|v1 * m1| <= 2^62) and
        // the rounding constant 2^(ts-1) <= 2^61.
        logic signed [63:0] p2, k2;
        logic [5:0]         ts2;
        always_ff @(posedge clk) begin
            if (valid_d[0]) begin
                p2  <= 64'(v1) * 64'(m1);
                k2  <= 64'sd1 <<< (ts1 - 6'd1);
                ts2 <= ts1;
            end
        end

        // Stage 3: add the rounding constant; |p2| + k2 < 2^63, no overflow.
        logic signed [63:0] s3;
        logic [5:0]         ts3;
        always_ff @(posedge clk) begin
            if (valid_d[1]) begin
                s3  <= p2 + k2;
                ts3 <= ts2;
            end
        end

        // Stage 4: arithmetic (flooring) right shift: the single rounding,
        // floor(v * mult / 2^ts + 1/2), i.e. ties toward +inf.
        logic signed [63:0] r4;
        always_ff @(posedge clk) begin
            if (valid_d[2]) r4 <= s3 >>> ts3;
        end

        // Stage 5: saturate to int32 (only reachable with shift > 0).
        logic signed [31:0] y5;
        always_ff @(posedge clk) begin
            if (valid_d[3]) begin
                if (r4 > 64'(I32_MAX))      y5 <= I32_MAX;
                else if (r4 < 64'(I32_MIN)) y5 <= I32_MIN;
                else                        y5 <= r4[31:0];
            end
        end

        // Stage 6: zero point (33 bits: cannot wrap before the clamp) + clamp.
        always_ff @(posedge clk) begin
            if (valid_d[4]) begin
                logic signed [32:0] z6;
                z6 = 33'(y5) + 33'(zp_d[LATENCY-2]);
                if (z6 < 33'(cmin_d[LATENCY-2]))      out_q[8*c +: 8] <= cmin_d[LATENCY-2];
                else if (z6 > 33'(cmax_d[LATENCY-2])) out_q[8*c +: 8] <= cmax_d[LATENCY-2];
                else                                  out_q[8*c +: 8] <= z6[7:0];
            end
        end
    end
endmodule
