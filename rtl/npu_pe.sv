// npu_pe: one weight-stationary processing element of the NPU array
// (docs/architecture.md §2.2).
//
// Holds two int8 weights: w_active (used by the current tile) and w_shadow
// (the next tile, written through w_we/w_in while the current tile streams).
// Every cycle it computes psum_out = psum_in + a_in * w (int8 x int8 -> int16
// product, int32 wrapping sum) and forwards a_in to the right; both outputs
// are registered (one cycle per hop).
//
// swap_in travels with the activation: it marks the first pixel of a new
// tile. That pixel already multiplies by w_shadow, and w_shadow becomes
// w_active for the pixels that follow, so the swap moves through the array
// with the wavefront and no pixel ever mixes two tiles.
//
// A shadow write and a swap in the same cycle: the swap takes the old shadow
// value (it is a register read) and the write lands after it. The array
// relies on this to load the next tile starting in the swap cycle.
module npu_pe (
    input  logic               clk,
    input  logic               rst_n,
    input  logic signed [7:0]  a_in,
    input  logic               swap_in,
    input  logic signed [31:0] psum_in,
    input  logic               w_we,
    input  logic signed [7:0]  w_in,
    output logic signed [7:0]  a_out,
    output logic               swap_out,
    output logic signed [31:0] psum_out
);
    logic signed [7:0]  w_active, w_shadow, w_use;
    logic signed [15:0] prod;

    assign w_use = swap_in ? w_shadow : w_active;
    // Explicit 16-bit signed operands: the full int8 x int8 product, no width
    // inference by context.
    assign prod  = 16'(a_in) * 16'(w_use);

    // Weights and the swap token are state: reset them.
    always_ff @(posedge clk) begin
        if (!rst_n) begin
            w_active <= '0;
            w_shadow <= '0;
            swap_out <= 1'b0;
        end else begin
            swap_out <= swap_in;
            if (swap_in) w_active <= w_shadow;
            if (w_we)    w_shadow <= w_in;
        end
    end

    // Pure datapath: its content is qualified by the array's valid pipeline,
    // so it needs no reset.
    always_ff @(posedge clk) begin
        a_out    <= a_in;
        psum_out <= psum_in + 32'(prod);
    end
endmodule
