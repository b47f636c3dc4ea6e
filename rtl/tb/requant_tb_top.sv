// requant_tb_top: block testbench top for npu_requant (simulation only).
// A tb_stream_player plays the Python-generated stimulus; see tb/README.md.
//
// Stimulus word layout, LSB first: in_valid, acc[COLS*32], bias[COLS*32],
// mult[COLS*32], shift[COLS*6], out_zp[8], clamp_min[8], clamp_max[8].
// Output word: out_q[COLS*8].
module requant_tb_top #(
    parameter  int COLS  = 16,
    parameter  int DEPTH = 8192,
    localparam int IN_W  = 1 + COLS*(32*3 + 6) + 24,
    localparam int OUT_W = COLS*8
) (
    input  logic        clk,
    input  logic        rst_n,
    input  logic        load,
    input  logic        start,
    input  logic [31:0] n_stim,
    input  logic [31:0] n_rep,
    output logic        done,
    output logic [31:0] n_out,
    output logic [63:0] cycles,
    output logic [31:0] latency
);
    localparam int A = 1;                 // field offsets in the stimulus word
    localparam int B = A + COLS*32;
    localparam int M = B + COLS*32;
    localparam int S = M + COLS*32;
    localparam int Z = S + COLS*6;

    logic [IN_W-1:0]  stim;
    logic             out_valid;
    logic [OUT_W-1:0] out_q;

    tb_stream_player #(
        .IN_W(IN_W), .OUT_W(OUT_W), .IN_DEPTH(DEPTH), .OUT_DEPTH(DEPTH),
        .IN_FILE("requant_stim.hex"), .OUT_FILE("requant_out.hex")
    ) u_player (
        .clk, .rst_n, .load, .start, .n_stim, .n_rep, .stim,
        .in_fire(stim[0]), .out_valid, .out_data(out_q),
        .done, .n_out, .cycles, .latency
    );

    npu_requant #(.COLS(COLS)) u_dut (
        .clk, .rst_n,
        .in_valid  (stim[0]),
        .in_acc    (stim[A +: COLS*32]),
        .in_bias   (stim[B +: COLS*32]),
        .in_mult   (stim[M +: COLS*32]),
        .in_shift  (stim[S +: COLS*6]),
        .out_zp    (stim[Z +: 8]),
        .clamp_min (stim[Z + 8 +: 8]),
        .clamp_max (stim[Z + 16 +: 8]),
        .out_valid,
        .out_q
    );
endmodule
