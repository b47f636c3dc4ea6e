// npu_mbqm: LANES lanes of MultiplyByQuantizedMultiplier (docs/arithmetic.md,
// the single-rounding form), int32 in, int32 out, fully pipelined; used by ADD
// (input rescaling) and average POOL. Same arithmetic as npu_requant's stages
// 2-5, without the bias add and the int8 clamp (these callers need int32).
//
//   ts = 31 - shift;  out = saturate32((x*mult + 2^(ts-1)) >>> ts)
//
// Per-lane mult (int32, 0 or [2^30, 2^31)) and shift (signed 6-bit, [-31, 30]).
// Latency LATENCY = 4, one word per cycle, bubbles preserved.
module npu_mbqm #(
    parameter  int LANES = 16,
    localparam int LATENCY = 4
) (
    input  logic                 clk,
    input  logic                 rst_n,
    input  logic                 in_valid,
    input  logic [LANES*32-1:0]  in_x,
    input  logic [LANES*32-1:0]  in_mult,
    input  logic [LANES*6-1:0]   in_shift,
    output logic                 out_valid,
    output logic [LANES*32-1:0]  out_y
);
    localparam logic signed [31:0] I32_MAX = 32'sh7fff_ffff;
    localparam logic signed [31:0] I32_MIN = 32'sh8000_0000;

    logic [LATENCY-1:0] valid_d;
    always_ff @(posedge clk) begin
        if (!rst_n) valid_d <= '0;
        else        valid_d <= {valid_d[LATENCY-2:0], in_valid};
    end
    assign out_valid = valid_d[LATENCY-1];

    // Each stage's data registers load only when the stage receives a valid
    // word (a clock enable): out_y is only meaningful with out_valid, and an
    // idle pipeline then costs neither power nor simulation time.

    for (genvar c = 0; c < LANES; c++) begin : g_lane
        logic signed [31:0] x, mult;
        logic signed [5:0]  shift;
        assign x     = in_x[32*c +: 32];
        assign mult  = in_mult[32*c +: 32];
        assign shift = in_shift[6*c +: 6];

        // Stage 1: the 32x32 -> 64 product (|x*mult| < 2^62) and the rounding
        // constant 2^(ts-1); ts = 31 - shift lies in [1, 62], exact in 6 bits.
        logic signed [63:0] p1, k1;
        logic [5:0]         ts, ts1;
        assign ts = 6'd31 - shift;
        always_ff @(posedge clk) begin
            if (in_valid) begin
                p1  <= 64'(x) * 64'(mult);
                k1  <= 64'sd1 <<< (ts - 6'd1);
                ts1 <= ts;
            end
        end

        // Stage 2: add the rounding constant (|p1| + k1 < 2^63).
        logic signed [63:0] s2;
        logic [5:0]         ts2;
        always_ff @(posedge clk) begin
            if (valid_d[0]) begin
                s2  <= p1 + k1;
                ts2 <= ts1;
            end
        end

        // Stage 3: flooring shift: the single rounding, ties toward +inf.
        logic signed [63:0] r3;
        always_ff @(posedge clk) begin
            if (valid_d[1]) r3 <= s2 >>> ts2;
        end

        // Stage 4: saturate to int32 (only reachable with shift > 0).
        always_ff @(posedge clk) begin
            if (valid_d[2]) begin
                if (r3 > 64'(I32_MAX))      out_y[32*c +: 32] <= I32_MAX;
                else if (r3 < 64'(I32_MIN)) out_y[32*c +: 32] <= I32_MIN;
                else                        out_y[32*c +: 32] <= r3[31:0];
            end
        end
    end
endmodule
