// npu_requant: the POST requantisation datapath, COLS lanes, fully pipelined.
//
// Per lane c, for every input word (presil.golden.arith is the definition):
//   v  = wrap32(acc[c] + bias[c])
//   x1 = saturate32(v << max(shift[c], 0))             saturating left shift
//   y  = SRDHM(x1, mult[c])                             round(x1*mult / 2^31), ties up
//   y  = RoundingDivideByPOT(y, max(-shift[c], 0))      ties away from zero
//   q  = clamp(y + out_zp, clamp_min, clamp_max)        int8
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
// Stages: 1 bias add + shift decode, 2 saturating left shift, 3 32x32
// multiply, 4 SRDHM rounding, 5 rounding right shift, 6 zero point + clamp.
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
    always_ff @(posedge clk) begin
        zp_d[0]   <= out_zp;
        cmin_d[0] <= clamp_min;
        cmax_d[0] <= clamp_max;
        for (int i = 1; i < LATENCY - 1; i++) begin
            zp_d[i]   <= zp_d[i-1];
            cmin_d[i] <= cmin_d[i-1];
            cmax_d[i] <= cmax_d[i-1];
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

        // Stage 1: wrapping bias add; split the shift into left/right amounts.
        logic signed [31:0] v1, m1;
        logic [5:0]         ls1, rs1;
        always_ff @(posedge clk) begin
            v1  <= acc + bias;                       // int32 wrap, as ACC + bias'
            m1  <= mult;
            ls1 <= shift[5] ? 6'd0 : shift;
            rs1 <= shift[5] ? 6'(-shift) : 6'd0;
        end

        // Stage 2: saturating left shift. 63 bits hold v1 << 31 exactly, so
        // the comparison with the int32 range sees the true value.
        logic signed [62:0] sh2;
        logic signed [31:0] x2, m2;
        logic [5:0]         rs2;
        assign sh2 = 63'(v1) <<< ls1;
        always_ff @(posedge clk) begin
            if (sh2 > 63'(I32_MAX))      x2 <= I32_MAX;
            else if (sh2 < 63'(I32_MIN)) x2 <= I32_MIN;
            else                         x2 <= sh2[31:0];
            m2  <= m1;
            rs2 <= rs1;
        end

        // Stage 3: the 32x32 -> 64 signed product; flag gemmlowp's single
        // overflow case (INT32_MIN * INT32_MIN) for stage 4.
        logic signed [63:0] p3;
        logic               ovf3;
        logic [5:0]         rs3;
        always_ff @(posedge clk) begin
            p3   <= 64'(x2) * 64'(m2);
            ovf3 <= (x2 == I32_MIN) && (m2 == I32_MIN);
            rs3  <= rs2;
        end

        // Stage 4: SRDHM rounding: add the nudge, divide by 2^31 truncating
        // toward zero (an arithmetic shift floors, so negative values are
        // biased by 2^31 - 1 first).
        logic signed [63:0] n4;
        logic signed [31:0] t4, q4;
        logic [5:0]         rs4;
        assign n4 = p3 + (p3[63] ? (64'sd1 - 64'sd1073741824) : 64'sd1073741824);
        // |x2 * m2| <= 2^62, so the quotient fits in 32 bits: truncating is exact.
        assign t4 = 32'((n4 + (n4[63] ? 64'sd2147483647 : 64'sd0)) >>> 31);
        always_ff @(posedge clk) begin
            q4  <= ovf3 ? I32_MAX : t4;
            rs4 <= rs3;
        end

        // Stage 5: RoundingDivideByPOT, round half away from zero.
        logic [31:0]        mask5;
        logic [31:0]        rem5, thr5;
        logic signed [31:0] y5;
        assign mask5 = ~(32'hffff_ffff << rs4);     // 2^rs4 - 1, exact up to rs4 = 31
        assign rem5  = q4 & mask5;
        assign thr5  = (mask5 >> 1) + {31'd0, q4[31]};
        always_ff @(posedge clk) begin
            y5 <= (q4 >>> rs4) + ((rem5 > thr5) ? 32'sd1 : 32'sd0);
        end

        // Stage 6: zero point (33 bits: cannot wrap before the clamp) + clamp.
        logic signed [32:0] z6;
        assign z6 = 33'(y5) + 33'(zp_d[LATENCY-2]);
        always_ff @(posedge clk) begin
            if (z6 < 33'(cmin_d[LATENCY-2]))      out_q[8*c +: 8] <= cmin_d[LATENCY-2];
            else if (z6 > 33'(cmax_d[LATENCY-2])) out_q[8*c +: 8] <= cmax_d[LATENCY-2];
            else                                  out_q[8*c +: 8] <= z6[7:0];
        end
    end
endmodule
