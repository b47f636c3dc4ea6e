// npu_gemm_ctrl: executes one GEMM instruction (golden/isa.toml, docs/architecture.md
// §4.2) on the weight-stationary array: implicit-im2col pixel streamer,
// double-buffered weight-tile loader, and read-modify-write accumulation into ACC.
//
// Tiles t = (kh, kw, cb) in that nesting (kh outermost) are streamed in order;
// within a tile every output pixel (oh, ow) in raster order, one per cycle:
// ACT word in_addr + ((oh*sh + kh - pad_t)*in_w + (ow*sw + kw - pad_l))*in_cb
// + cb_start + cb, or the in_zp vector when that pixel lies outside the tile.
// Addresses are kept incrementally (additions per pixel; the few products are
// formed once in the setup cycles).
//
// Weight tiles are consecutive in WGT (tile t at wgt_addr + t*ROWS), so the
// loader just walks one pointer, one row per cycle. npu_array's timing rule
// (load of tile k+1 may start in or after the cycle tile k's first pixel
// enters, and tile k+1's first pixel must come after its row 0) is met with
// registered handshakes, both measured at the SRAM request, since ACT and WGT
// data both reach the array exactly one cycle after their request:
//   - loader starts tile k (k >= 1) only once tile k-1's first pixel was
//     issued in an earlier cycle (st_swapped >= k), and
//   - streamer issues tile k's first pixel only once row 0 of tile k was
//     issued in an earlier cycle (ld_next > k).
// So a tile costs max(M, ROWS) cycles and the first load is almost hidden.
//
// Accumulation: pixel metadata (ACC address, overwrite flag) travels beside the
// array in a LATENCY-deep delay line. The ACC read is issued one cycle before
// the pixel's sum leaves the array; the write (psum, or psum + old) happens in
// the exit cycle. Read-after-write hazard: the same ACC word comes back with
// the next tile, at least M cycles later; with M = 1 (FC) the two registered
// handshakes above still force >= 2 cycles between consecutive first pixels
// (S(k) < L(k+1) < S(k+1)), so the read is always after the previous write
// to that word, whatever the ACT stalls. A read issued in the same cycle as
// the write of the same word (only possible if the handshakes were made
// combinational) is nevertheless forwarded from a register, so correctness
// does not rest on that timing argument.
//
// The instruction word must stay stable from start until done.
module npu_gemm_ctrl
    import npu_isa_pkg::*;
#(
    parameter  int ROWS   = 16,
    parameter  int COLS   = 16,
    parameter  int ACC_AW = 12,
    localparam int RW     = (ROWS > 1) ? $clog2(ROWS) : 1
) (
    input  logic                 clk,
    input  logic                 rst_n,
    input  logic                 start,
    input  logic [255:0]         instr,
    output logic                 busy,        // from the cycle after start until the last ACC write is done
    // ACT read (arbitrated: a request is held until granted; data 1 cycle later)
    output logic                 act_rd_req,
    input  logic                 act_rd_gnt,
    output logic [19:0]          act_rd_addr,
    input  logic [ROWS*8-1:0]    act_rd_data,
    // WGT read (private, data 1 cycle after en)
    output logic                 wgt_rd_en,
    output logic [19:0]          wgt_rd_addr,
    input  logic [COLS*8-1:0]    wgt_rd_data,
    // ACC (private dual-port RAM, read data 1 cycle after en, read-first)
    output logic                 acc_rd_en,
    output logic [ACC_AW-1:0]    acc_rd_addr,
    input  logic [COLS*32-1:0]   acc_rd_data,
    output logic                 acc_wr_en,
    output logic [ACC_AW-1:0]    acc_wr_addr,
    output logic [COLS*32-1:0]   acc_wr_data,
    output logic                 mac_active
);
    localparam int LATENCY = ROWS + COLS;     // npu_array's
    localparam int SW = 40;                   // signed address arithmetic: no overflow for any field values
    typedef logic signed [SW-1:0] saddr_t;
    typedef logic signed [15:0]   scoord_t;

    // ---- instruction fields (stable while busy) ---------------------------
    logic        f_accumulate;
    logic [19:0] f_in_addr, f_wgt_addr;
    logic [ACC_AW-1:0] f_acc_addr;        // < ACC_DEPTH (checked by npu_decode)
    logic [11:0] f_in_h, f_in_w, f_out_h, f_out_w;
    logic [7:0]  f_in_cb, f_cb_start, f_cb_count;
    logic [3:0]  f_k_h, f_k_w, f_pad_t, f_pad_l;
    logic [2:0]  f_stride_h, f_stride_w;
    logic [7:0]  f_in_zp;
    assign f_accumulate = instr[GEMM_ACCUMULATE_LSB];
    assign f_in_addr    = instr[GEMM_IN_ADDR_LSB  +: GEMM_IN_ADDR_W];
    assign f_in_h       = instr[GEMM_IN_H_LSB     +: GEMM_IN_H_W];
    assign f_in_w       = instr[GEMM_IN_W_LSB     +: GEMM_IN_W_W];
    assign f_in_cb      = instr[GEMM_IN_CB_LSB    +: GEMM_IN_CB_W];
    assign f_cb_start   = instr[GEMM_CB_START_LSB +: GEMM_CB_START_W];
    assign f_cb_count   = instr[GEMM_CB_COUNT_LSB +: GEMM_CB_COUNT_W];
    assign f_out_h      = instr[GEMM_OUT_H_LSB    +: GEMM_OUT_H_W];
    assign f_out_w      = instr[GEMM_OUT_W_LSB    +: GEMM_OUT_W_W];
    assign f_k_h        = instr[GEMM_K_H_LSB      +: GEMM_K_H_W];
    assign f_k_w        = instr[GEMM_K_W_LSB      +: GEMM_K_W_W];
    assign f_stride_h   = instr[GEMM_STRIDE_H_LSB +: GEMM_STRIDE_H_W];
    assign f_stride_w   = instr[GEMM_STRIDE_W_LSB +: GEMM_STRIDE_W_W];
    assign f_pad_t      = instr[GEMM_PAD_T_LSB    +: GEMM_PAD_T_W];
    assign f_pad_l      = instr[GEMM_PAD_L_LSB    +: GEMM_PAD_L_W];
    assign f_in_zp      = instr[GEMM_IN_ZP_LSB    +: GEMM_IN_ZP_W];
    assign f_wgt_addr   = instr[GEMM_WGT_ADDR_LSB +: GEMM_WGT_ADDR_W];
    assign f_acc_addr   = instr[GEMM_ACC_ADDR_LSB +: ACC_AW];

    typedef enum logic [2:0] {S_IDLE, S_SETUP1, S_SETUP2, S_SETUP3, S_RUN, S_DRAIN} state_t;
    state_t state;
    logic   drained;

    // ---- per-instruction constants (setup) ---------------------------------
    saddr_t      row_stride;      // in_w*in_cb: words per input row
    saddr_t      step_w;          // stride_w*in_cb
    saddr_t      step_h;          // stride_h*row_stride
    saddr_t      col0;            // -pad_l*in_cb
    logic [15:0] n_tiles;         // k_h*k_w*cb_count (<= 57375)

    // ---- streamer state ------------------------------------------------------
    // current tile
    logic [7:0]  t_cb;
    logic [3:0]  t_kh, t_kw;
    saddr_t      t_kh_row;        // in_addr + (kh - pad_t)*row_stride + cb_start
    saddr_t      t_kw_col;        // (kw - pad_l)*in_cb
    scoord_t     t_ih0, t_iw0;    // kh - pad_t, kw - pad_l
    logic [15:0] st_tile;         // tiles completed
    logic [15:0] st_swapped;      // tiles whose first pixel has been issued
    // current pixel
    logic [11:0] st_oh, st_ow;
    logic [ACC_AW-1:0] st_acc;    // acc_addr + oh*out_w + ow
    saddr_t      row_addr, col_off;
    scoord_t     ih, iw;

    // ---- loader state --------------------------------------------------------
    logic [15:0] ld_next;         // tiles whose row 0 has been issued
    logic        ld_busy;
    logic [RW-1:0] ld_row;
    logic [19:0] ld_ptr;

    // ---- streamer: issue one pixel per cycle ---------------------------------
    logic st_active, st_first, st_last, pix_in, st_can, st_fire;
    assign st_active = (state == S_RUN) && (st_tile != n_tiles);
    assign st_first  = (st_oh == '0) && (st_ow == '0);
    assign st_last   = (st_oh == f_out_h - 12'd1) && (st_ow == f_out_w - 12'd1);
    assign pix_in    = (ih >= 0) && (ih < scoord_t'({4'd0, f_in_h}))
                    && (iw >= 0) && (iw < scoord_t'({4'd0, f_in_w}));
    // A new tile's first pixel waits until its row 0 was issued in an earlier cycle.
    assign st_can    = st_active && (!st_first || (ld_next > st_tile));
    assign st_fire   = st_can && (!pix_in || act_rd_gnt);
    assign act_rd_req  = st_can && pix_in;
    assign act_rd_addr = 20'(row_addr + col_off);   // in range whenever pix_in

    // next tile (valid when st_last)
    logic [7:0]  nx_cb;
    logic [3:0]  nx_kh, nx_kw;
    saddr_t      nx_kh_row, nx_kw_col;
    scoord_t     nx_ih0, nx_iw0;
    always_comb begin
        nx_cb = t_cb + 8'd1; nx_kw = t_kw; nx_kh = t_kh;
        nx_kh_row = t_kh_row; nx_kw_col = t_kw_col; nx_ih0 = t_ih0; nx_iw0 = t_iw0;
        if (t_cb == f_cb_count - 8'd1) begin
            nx_cb = '0;
            if (t_kw == f_k_w - 4'd1) begin
                nx_kw = '0; nx_kw_col = col0; nx_iw0 = -scoord_t'({12'd0, f_pad_l});
                nx_kh = t_kh + 4'd1; nx_kh_row = t_kh_row + row_stride; nx_ih0 = t_ih0 + 16'sd1;
            end else begin
                nx_kw = t_kw + 4'd1; nx_kw_col = t_kw_col + saddr_t'({32'd0, f_in_cb}); nx_iw0 = t_iw0 + 16'sd1;
            end
        end
    end

    // ---- loader: one WGT row per cycle ----------------------------------------
    logic ld_start, ld_fire;
    assign ld_start = (state == S_RUN) && !ld_busy && (ld_next != n_tiles) && (st_swapped >= ld_next);
    assign ld_fire  = ld_start || ld_busy;
    assign wgt_rd_en   = ld_fire;
    assign wgt_rd_addr = ld_ptr;

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            state <= S_IDLE;
            st_tile <= '0; st_swapped <= '0; ld_next <= '0; ld_busy <= 1'b0; ld_row <= '0;
        end else begin
            case (state)
                S_IDLE:   if (start) state <= S_SETUP1;
                S_SETUP1: state <= S_SETUP2;
                S_SETUP2: state <= S_SETUP3;
                S_SETUP3: state <= S_RUN;
                S_RUN:    if (st_tile == n_tiles && ld_next == n_tiles && !ld_busy) state <= S_DRAIN;
                S_DRAIN:  if (drained) state <= S_IDLE;
                default:  state <= S_IDLE;
            endcase
            if (state == S_SETUP3) begin
                st_tile <= '0; st_swapped <= '0; ld_next <= '0; ld_busy <= 1'b0; ld_row <= '0;
            end
            if (st_fire && st_first) st_swapped <= st_swapped + 16'd1;
            if (st_fire && st_last)  st_tile    <= st_tile + 16'd1;
            if (ld_start) ld_next <= ld_next + 16'd1;
            if (ld_fire) begin
                ld_row  <= (ld_row == RW'(ROWS - 1)) ? '0 : ld_row + RW'(1);
                ld_busy <= (ld_row != RW'(ROWS - 1));
            end
        end
    end

    // Setup products and streamer/loader registers (no reset needed: loaded in setup).
    always_ff @(posedge clk) begin
        case (state)
            S_SETUP1: begin
                row_stride <= saddr_t'({28'd0, f_in_w}) * saddr_t'({32'd0, f_in_cb});
                step_w     <= saddr_t'({37'd0, f_stride_w}) * saddr_t'({32'd0, f_in_cb});
                col0       <= -(saddr_t'({36'd0, f_pad_l}) * saddr_t'({32'd0, f_in_cb}));
                n_tiles    <= ({12'd0, f_k_h} * {12'd0, f_k_w}) * {8'd0, f_cb_count};
            end
            S_SETUP2: begin
                step_h   <= saddr_t'({37'd0, f_stride_h}) * row_stride;
                t_kh_row <= saddr_t'({20'd0, f_in_addr}) + saddr_t'({32'd0, f_cb_start})
                          - saddr_t'({36'd0, f_pad_t}) * row_stride;
                t_kw_col <= col0;
                t_ih0    <= -scoord_t'({12'd0, f_pad_t});
                t_iw0    <= -scoord_t'({12'd0, f_pad_l});
                t_cb <= '0; t_kh <= '0; t_kw <= '0;
                ld_ptr <= f_wgt_addr;
            end
            S_SETUP3: begin
                row_addr <= t_kh_row; col_off <= t_kw_col; ih <= t_ih0; iw <= t_iw0;
                st_oh <= '0; st_ow <= '0; st_acc <= f_acc_addr;
            end
            default: ;
        endcase
        if (ld_fire) ld_ptr <= ld_ptr + 20'd1;
        if (st_fire) begin
            if (st_last) begin
                t_cb <= nx_cb; t_kw <= nx_kw; t_kh <= nx_kh;
                t_kh_row <= nx_kh_row; t_kw_col <= nx_kw_col; t_ih0 <= nx_ih0; t_iw0 <= nx_iw0;
                row_addr <= nx_kh_row + saddr_t'({32'd0, nx_cb});
                col_off  <= nx_kw_col; ih <= nx_ih0; iw <= nx_iw0;
                st_oh <= '0; st_ow <= '0; st_acc <= f_acc_addr;
            end else if (st_ow == f_out_w - 12'd1) begin
                st_ow <= '0; st_oh <= st_oh + 12'd1;
                iw <= t_iw0; col_off <= t_kw_col;
                ih <= ih + scoord_t'({13'd0, f_stride_h}); row_addr <= row_addr + step_h;
                st_acc <= st_acc + ACC_AW'(1);
            end else begin
                st_ow <= st_ow + 12'd1;
                iw <= iw + scoord_t'({13'd0, f_stride_w}); col_off <= col_off + step_w;
                st_acc <= st_acc + ACC_AW'(1);
            end
        end
    end

    // ---- array input stage: ACT/WGT data arrive one cycle after the request ----
    logic              a_valid, a_swap, a_pad, w_valid;
    logic [RW-1:0]     w_row;
    logic [ROWS*8-1:0] a_act;
    logic signed [7:0] a_zp;
    always_ff @(posedge clk) begin
        if (!rst_n) begin
            a_valid <= 1'b0; a_swap <= 1'b0; w_valid <= 1'b0;
        end else begin
            a_valid <= st_fire;
            a_swap  <= st_fire && st_first;
            w_valid <= ld_fire;
        end
    end
    always_ff @(posedge clk) begin
        a_pad <= !pix_in;
        a_zp  <= f_in_zp;
        w_row <= ld_row;
    end
    assign a_act = a_pad ? {ROWS{a_zp}} : act_rd_data;
    assign mac_active = a_valid;

    logic                out_valid;
    logic [COLS*32-1:0]  out_psum;
    npu_array #(.ROWS(ROWS), .COLS(COLS)) u_array (
        .clk, .rst_n,
        .in_valid (a_valid),
        .in_swap  (a_swap),
        .in_act   (a_act),
        .w_valid  (w_valid),
        .w_row    (w_row),
        .w_data   (wgt_rd_data),
        .out_valid,
        .out_psum
    );

    // ---- metadata beside the array: md_*[i] is i+1 cycles behind a_valid ------
    // (a_valid itself is the array input, so md_*[LATENCY-1] lines up with out_valid.)
    logic              md_v   [LATENCY];
    logic              md_ovw [LATENCY];
    logic [ACC_AW-1:0] md_adr [LATENCY];
    logic              a_ovw;
    logic [ACC_AW-1:0] a_adr;
    always_ff @(posedge clk) begin
        a_ovw <= !f_accumulate && (st_tile == '0);
        a_adr <= st_acc;
        md_ovw[0] <= a_ovw; md_adr[0] <= a_adr;
        for (int i = 1; i < LATENCY; i++) begin
            md_ovw[i] <= md_ovw[i-1]; md_adr[i] <= md_adr[i-1];
        end
    end
    always_ff @(posedge clk) begin
        if (!rst_n) begin
            for (int i = 0; i < LATENCY; i++) md_v[i] <= 1'b0;
        end else begin
            md_v[0] <= a_valid;
            for (int i = 1; i < LATENCY; i++) md_v[i] <= md_v[i-1];
        end
    end

    // ---- ACC read-modify-write -------------------------------------------------
    logic               fwd_hit;
    logic [COLS*32-1:0] fwd_data, old;
    assign acc_rd_en   = md_v[LATENCY-2] && !md_ovw[LATENCY-2];
    assign acc_rd_addr = md_adr[LATENCY-2];
    always_ff @(posedge clk) begin
        fwd_hit  <= acc_wr_en && (acc_wr_addr == acc_rd_addr);
        fwd_data <= acc_wr_data;
    end
    assign old = fwd_hit ? fwd_data : acc_rd_data;
    assign acc_wr_en   = out_valid;
    assign acc_wr_addr = md_adr[LATENCY-1];
    for (genvar c = 0; c < COLS; c++) begin : g_acc
        assign acc_wr_data[32*c +: 32] = md_ovw[LATENCY-1] ? out_psum[32*c +: 32]
                                                          : out_psum[32*c +: 32] + old[32*c +: 32];
    end

    // ---- completion: everything issued and the last ACC write done ------------
    logic in_flight;
    always_comb begin
        in_flight = a_valid;
        for (int i = 0; i < LATENCY; i++) in_flight = in_flight | md_v[i];
    end
    assign drained = (state == S_DRAIN) && !in_flight;
    assign busy    = (state != S_IDLE);
endmodule
