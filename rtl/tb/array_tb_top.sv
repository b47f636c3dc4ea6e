// array_tb_top: block testbench top for npu_array (simulation only).
// A tb_stream_player plays the Python-generated cycle-by-cycle stimulus into
// the array and records its output words; see tb/README.md.
//
// Stimulus word layout, LSB first: in_valid, in_swap, w_valid, w_row[RW],
// in_act[ROWS*8], w_data[COLS*8]. Output word: out_psum[COLS*32].
module array_tb_top #(
    parameter  int ROWS  = 16,
    parameter  int COLS  = 16,
    parameter  int DEPTH = 4096,
    localparam int RW    = (ROWS > 1) ? $clog2(ROWS) : 1,
    localparam int IN_W  = 3 + RW + ROWS*8 + COLS*8,
    localparam int OUT_W = COLS*32
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
    logic [IN_W-1:0]  stim;
    logic             out_valid;
    logic [OUT_W-1:0] out_psum;

    tb_stream_player #(
        .IN_W(IN_W), .OUT_W(OUT_W), .IN_DEPTH(DEPTH), .OUT_DEPTH(DEPTH),
        .IN_FILE("array_stim.hex"), .OUT_FILE("array_out.hex")
    ) u_player (
        .clk, .rst_n, .load, .start, .n_stim, .n_rep, .stim,
        .in_fire(stim[0]), .out_valid, .out_data(out_psum),
        .done, .n_out, .cycles, .latency
    );

    npu_array #(.ROWS(ROWS), .COLS(COLS)) u_dut (
        .clk, .rst_n,
        .in_valid (stim[0]),
        .in_swap  (stim[1]),
        .w_valid  (stim[2]),
        .w_row    (stim[3 +: RW]),
        .in_act   (stim[3 + RW +: ROWS*8]),
        .w_data   (stim[3 + RW + ROWS*8 +: COLS*8]),
        .out_valid,
        .out_psum
    );
endmodule
