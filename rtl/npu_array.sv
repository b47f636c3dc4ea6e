// npu_array: ROWS x COLS weight-stationary systolic array (docs/architecture.md §2).
//
// Streaming interface (one clock, synchronous active-low reset rst_n):
//
//   in_valid, in_act[ROWS*8]   one pixel per cycle: lane r (bits 8r+7:8r, int8)
//                              is input channel r of the current weight tile.
//   in_swap                    with a pixel: "first pixel of a new tile" - this
//                              pixel and all later ones use the tile last
//                              loaded into the shadow weights. May also be given
//                              on a bubble (in_valid = 0).
//   w_valid, w_row, w_data     shadow-weight load, one array row per cycle:
//                              w_data lane c (bits 8c+7:8c, int8) is the
//                              weight from input channel w_row to output
//                              channel c (= one WGT SRAM word).
//   out_valid, out_psum[COLS*32]
//                              one output word per cycle: lane c (bits
//                              32c+31:32c, int32 wrapping) = sum_r act[r]*W[r][c]
//                              for the pixel that entered LATENCY cycles earlier.
//
// Timing: a pixel presented in cycle t appears on out_* in cycle
// t + LATENCY, LATENCY = ROWS + COLS (pipeline fill); outputs keep input order
// and the valid pattern (bubbles in -> bubbles out); throughput one pixel per
// cycle.
//
// Weight-load rule (all cycles at this module's ports): row r of tile i+1 may
// be presented in any cycle t with  swap(i) + r <= t < swap(i+1) + r,  where
// swap(i) is the cycle in_swap of tile i is presented. Loading rows 0..ROWS-1
// in order on consecutive cycles starting at cycle L therefore only needs
// swap(i) <= L < swap(i+1): the next tile may start loading in the cycle of
// the current swap, and its own swap may follow one cycle after its row 0.
// This holds because the weight word is skewed per column exactly like the
// activations (row r is delayed by its load order, column c by c cycles), so
// a shadow weight is written just behind the previous swap wavefront and just
// ahead of the next one. With one WGT word per cycle the array is busy when a
// tile has at least ROWS pixels (a tile load takes ROWS cycles).
//
// Accumulation across tiles (GEMM accumulate = 1, several (kh, kw, cb) steps)
// is left to the caller: it adds out_psum to the ACC word at the output side,
// where a read-modify-write of pixel p by step k+1 happens at least one tile
// after step k wrote it. An acc_in at the top of the columns would instead
// need ACC[p] ROWS+COLS cycles before step k's result for p is written.
module npu_array #(
    parameter  int ROWS = 16,
    parameter  int COLS = 16,
    localparam int RW   = (ROWS > 1) ? $clog2(ROWS) : 1,
    localparam int LATENCY = ROWS + COLS
) (
    input  logic                  clk,
    input  logic                  rst_n,
    input  logic                  in_valid,
    input  logic                  in_swap,
    input  logic [ROWS*8-1:0]     in_act,
    input  logic                  w_valid,
    input  logic [RW-1:0]         w_row,
    input  logic [COLS*8-1:0]     w_data,
    output logic                  out_valid,
    output logic [COLS*32-1:0]    out_psum
);
    // Horizontal (activation, swap) and vertical (partial sum) nets between PEs.
    logic signed [7:0]  a_h    [ROWS][COLS+1];
    logic               swap_h [ROWS][COLS+1];
    logic signed [31:0] p_v    [ROWS+1][COLS];
    // Weight load after the per-column skew.
    logic               wv_c   [COLS];
    logic [RW-1:0]      wrow_c [COLS];
    logic signed [7:0]  wdat_c [COLS];

    // ---- input skew: row r delayed r cycles -------------------------------
    for (genvar r = 0; r < ROWS; r++) begin : g_skew
        if (r == 0) begin : g_direct
            assign a_h[0][0]    = in_act[7:0];
            assign swap_h[0][0] = in_swap;
        end else begin : g_delay
            logic [7:0] act_d  [r];
            logic       swap_d [r];
            always_ff @(posedge clk) begin
                act_d[0] <= in_act[8*r +: 8];
                for (int i = 1; i < r; i++) act_d[i] <= act_d[i-1];
            end
            always_ff @(posedge clk) begin
                if (!rst_n) begin
                    for (int i = 0; i < r; i++) swap_d[i] <= 1'b0;
                end else begin
                    swap_d[0] <= in_swap;
                    for (int i = 1; i < r; i++) swap_d[i] <= swap_d[i-1];
                end
            end
            assign a_h[r][0]    = act_d[r-1];
            assign swap_h[r][0] = swap_d[r-1];
        end
    end

    // ---- weight skew: column c delayed c cycles ---------------------------
    for (genvar c = 0; c < COLS; c++) begin : g_wskew
        if (c == 0) begin : g_direct
            assign wv_c[0]   = w_valid;
            assign wrow_c[0] = w_row;
            assign wdat_c[0] = w_data[7:0];
        end else begin : g_delay
            logic          v_d   [c];
            logic [RW-1:0] row_d [c];
            logic [7:0]    dat_d [c];
            always_ff @(posedge clk) begin
                if (!rst_n) begin
                    for (int i = 0; i < c; i++) v_d[i] <= 1'b0;
                end else begin
                    v_d[0] <= w_valid;
                    for (int i = 1; i < c; i++) v_d[i] <= v_d[i-1];
                end
            end
            always_ff @(posedge clk) begin
                row_d[0] <= w_row;
                dat_d[0] <= w_data[8*c +: 8];
                for (int i = 1; i < c; i++) begin
                    row_d[i] <= row_d[i-1];
                    dat_d[i] <= dat_d[i-1];
                end
            end
            assign wv_c[c]   = v_d[c-1];
            assign wrow_c[c] = row_d[c-1];
            assign wdat_c[c] = dat_d[c-1];
        end
    end

    // ---- the PE grid ------------------------------------------------------
    for (genvar c = 0; c < COLS; c++) begin : g_top
        assign p_v[0][c] = '0;
    end
    for (genvar r = 0; r < ROWS; r++) begin : g_row
        for (genvar c = 0; c < COLS; c++) begin : g_col
            npu_pe u_pe (
                .clk      (clk),
                .rst_n    (rst_n),
                .a_in     (a_h[r][c]),
                .swap_in  (swap_h[r][c]),
                .psum_in  (p_v[r][c]),
                .w_we     (wv_c[c] && (wrow_c[c] == RW'(r))),
                .w_in     (wdat_c[c]),
                .a_out    (a_h[r][c+1]),
                .swap_out (swap_h[r][c+1]),
                .psum_out (p_v[r+1][c])
            );
        end
    end

    // ---- output de-skew: column c delayed COLS-c cycles --------------------
    // Column c leaves the bottom row c cycles after column 0; delaying it by
    // COLS-c (>= 1, so the output is registered) aligns the whole word.
    for (genvar c = 0; c < COLS; c++) begin : g_deskew
        localparam int D = COLS - c;
        logic [31:0] psum_d [D];
        always_ff @(posedge clk) begin
            psum_d[0] <= p_v[ROWS][c];
            for (int i = 1; i < D; i++) psum_d[i] <= psum_d[i-1];
        end
        assign out_psum[32*c +: 32] = psum_d[D-1];
    end

    // ---- valid pipeline ---------------------------------------------------
    logic [LATENCY-1:0] valid_d;
    always_ff @(posedge clk) begin
        if (!rst_n) valid_d <= '0;
        else        valid_d <= {valid_d[LATENCY-2:0], in_valid};
    end
    assign out_valid = valid_d[LATENCY-1];
endmodule
