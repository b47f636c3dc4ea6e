// npu_pool: POOL (max / average) over all in_cb channel blocks, as golden/iss.py
// _pool defines it. Two decoupled stages:
//
//   gather: for each output word (oh, ow, cb) in output order, walks the window
//           (kh, kw), one element per cycle; elements inside the tile are read
//           from ACT, the others skipped (still one cycle, as the cost model
//           counts them). Per lane it keeps the max, the sum of (x - in_zp) and
//           the valid count; the window result goes to a holding register.
//   finish: from the holding register: max -> the max (in_zp if no valid
//           element); average -> t = MBQM(sum, mult, shift) (npu_mbqm), then
//           q = (|t| + n/2) / n by a 33-step restoring divider per lane (round
//           half away from zero), clamp(sign*q + out_zp, -128, 127).
// The gather of the next window overlaps the finish of the previous one; its
// last element waits only while the holding register is still full.
//
// The output goes to the shared ACT write queue in order (word out_addr + i).
// The output range must not overlap the input tile (the ISS reads it all first).
module npu_pool
    import npu_isa_pkg::*;
#(
    parameter  int ROWS = 16,
    parameter  int WQ_W = 5
) (
    input  logic                 clk,
    input  logic                 rst_n,
    input  logic                 start,
    input  logic [255:0]         instr,       // stable while busy
    output logic                 busy,
    output logic                 act_rd_req,
    input  logic                 act_rd_gnt,
    output logic [19:0]          act_rd_addr,
    input  logic [ROWS*8-1:0]    act_rd_data,
    input  logic [WQ_W-1:0]      wq_free,
    output logic                 wq_push,
    output logic [19:0]          wq_addr,
    output logic [ROWS*8-1:0]    wq_data
);
    localparam int SW = 40;
    typedef logic signed [SW-1:0] saddr_t;
    typedef logic signed [15:0]   scoord_t;

    logic        f_mode, f_cip;
    logic [19:0] f_in_addr, f_out_addr;
    logic [11:0] f_in_h, f_in_w, f_out_h, f_out_w;
    logic [7:0]  f_in_cb, f_k_h, f_k_w, f_in_zp, f_out_zp;
    logic [3:0]  f_stride_h, f_stride_w, f_pad_t, f_pad_l;
    logic [31:0] f_mult;
    logic [5:0]  f_shift;
    assign f_mode     = instr[POOL_MODE_LSB];
    assign f_cip      = instr[POOL_COUNT_INCLUDE_PAD_LSB];
    assign f_in_addr  = instr[POOL_IN_ADDR_LSB  +: POOL_IN_ADDR_W];
    assign f_in_h     = instr[POOL_IN_H_LSB     +: POOL_IN_H_W];
    assign f_in_w     = instr[POOL_IN_W_LSB     +: POOL_IN_W_W];
    assign f_in_cb    = instr[POOL_IN_CB_LSB    +: POOL_IN_CB_W];
    assign f_out_h    = instr[POOL_OUT_H_LSB    +: POOL_OUT_H_W];
    assign f_out_w    = instr[POOL_OUT_W_LSB    +: POOL_OUT_W_W];
    assign f_k_h      = instr[POOL_K_H_LSB      +: POOL_K_H_W];
    assign f_k_w      = instr[POOL_K_W_LSB      +: POOL_K_W_W];
    assign f_stride_h = instr[POOL_STRIDE_H_LSB +: POOL_STRIDE_H_W];
    assign f_stride_w = instr[POOL_STRIDE_W_LSB +: POOL_STRIDE_W_W];
    assign f_pad_t    = instr[POOL_PAD_T_LSB    +: POOL_PAD_T_W];
    assign f_pad_l    = instr[POOL_PAD_L_LSB    +: POOL_PAD_L_W];
    assign f_out_addr = instr[POOL_OUT_ADDR_LSB +: POOL_OUT_ADDR_W];
    assign f_in_zp    = instr[POOL_IN_ZP_LSB    +: POOL_IN_ZP_W];
    assign f_out_zp   = instr[POOL_OUT_ZP_LSB   +: POOL_OUT_ZP_W];
    assign f_mult     = instr[POOL_MULT_LSB     +: POOL_MULT_W];
    assign f_shift    = instr[POOL_SHIFT_LSB    +: POOL_SHIFT_W];

    typedef enum logic [1:0] {S_IDLE, S_SETUP1, S_SETUP2, S_RUN} state_t;
    state_t state;

    // ---- setup constants ---------------------------------------------------------
    saddr_t      row_stride, step_w, step_h;
    logic [15:0] kk;                      // k_h*k_w

    // ---- gather state --------------------------------------------------------------
    logic        g_done;                  // every element issued
    logic [11:0] oh, ow;
    logic [7:0]  cb, kh, kw;
    saddr_t      oh_base;                 // address of window origin (ih0, -pad_l), block 0
    saddr_t      ow_base;                 // ... of (ih0, iw0), block 0
    saddr_t      elem_row, elem;          // (ih, iw0, cb) and (ih, iw, cb)
    scoord_t     ih0, iw0, ih, iw;

    logic e_in, e_last_k, last_win, g_can, g_fire;
    logic hold_busy, busy_tail, e_v, e_last;
    assign e_in     = (ih >= 0) && (ih < scoord_t'({4'd0, f_in_h})) && (iw >= 0) && (iw < scoord_t'({4'd0, f_in_w}));
    assign e_last_k = (kh == f_k_h - 8'd1) && (kw == f_k_w - 8'd1);
    assign last_win = (cb == f_in_cb - 8'd1) && (ow == f_out_w - 12'd1) && (oh == f_out_h - 12'd1);
    // The last element of a window needs the holding register free when it arrives: not
    // full, and not about to be filled by the previous window's last element, still in
    // flight (e_v && e_last; back to back with 1-element windows, k_h = k_w = 1).
    assign g_can    = (state == S_RUN) && !g_done && !(e_last_k && (hold_busy || (e_v && e_last)));
    assign g_fire   = g_can && (!e_in || act_rd_gnt);
    assign act_rd_req  = g_can && e_in;
    assign act_rd_addr = elem[19:0];

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            state <= S_IDLE; g_done <= 1'b1;
        end else begin
            case (state)
                S_IDLE:   if (start) state <= S_SETUP1;
                S_SETUP1: state <= S_SETUP2;
                S_SETUP2: begin state <= S_RUN; g_done <= 1'b0; end
                S_RUN:    if (g_fire && e_last_k && last_win) g_done <= 1'b1;
                default:  state <= S_IDLE;
            endcase
            if (state == S_RUN && !busy_tail) state <= S_IDLE;
        end
    end

    always_ff @(posedge clk) begin
        case (state)
            S_SETUP1: begin
                row_stride <= saddr_t'({28'd0, f_in_w}) * saddr_t'({32'd0, f_in_cb});
                step_w     <= saddr_t'({36'd0, f_stride_w}) * saddr_t'({32'd0, f_in_cb});
                kk         <= {8'd0, f_k_h} * {8'd0, f_k_w};
            end
            S_SETUP2: begin
                step_h  <= saddr_t'({36'd0, f_stride_h}) * row_stride;
                oh_base <= saddr_t'({20'd0, f_in_addr}) - saddr_t'({36'd0, f_pad_t}) * row_stride
                         - saddr_t'({36'd0, f_pad_l}) * saddr_t'({32'd0, f_in_cb});
                ow_base <= saddr_t'({20'd0, f_in_addr}) - saddr_t'({36'd0, f_pad_t}) * row_stride
                         - saddr_t'({36'd0, f_pad_l}) * saddr_t'({32'd0, f_in_cb});
                elem_row <= saddr_t'({20'd0, f_in_addr}) - saddr_t'({36'd0, f_pad_t}) * row_stride
                         - saddr_t'({36'd0, f_pad_l}) * saddr_t'({32'd0, f_in_cb});
                elem    <= saddr_t'({20'd0, f_in_addr}) - saddr_t'({36'd0, f_pad_t}) * row_stride
                         - saddr_t'({36'd0, f_pad_l}) * saddr_t'({32'd0, f_in_cb});
                ih0 <= -scoord_t'({12'd0, f_pad_t}); ih <= -scoord_t'({12'd0, f_pad_t});
                iw0 <= -scoord_t'({12'd0, f_pad_l}); iw <= -scoord_t'({12'd0, f_pad_l});
                oh <= '0; ow <= '0; cb <= '0; kh <= '0; kw <= '0;
            end
            default: ;
        endcase
        if (g_fire) begin
            if (kw != f_k_w - 8'd1) begin
                kw <= kw + 8'd1; iw <= iw + 16'sd1; elem <= elem + saddr_t'({32'd0, f_in_cb});
            end else if (kh != f_k_h - 8'd1) begin
                kw <= '0; kh <= kh + 8'd1; iw <= iw0; ih <= ih + 16'sd1;
                elem_row <= elem_row + row_stride; elem <= elem_row + row_stride;
            end else begin
                kw <= '0; kh <= '0;
                if (cb != f_in_cb - 8'd1) begin
                    cb <= cb + 8'd1; ih <= ih0; iw <= iw0;
                    elem_row <= ow_base + saddr_t'({32'd0, cb + 8'd1});
                    elem     <= ow_base + saddr_t'({32'd0, cb + 8'd1});
                end else if (ow != f_out_w - 12'd1) begin
                    cb <= '0; ow <= ow + 12'd1;
                    ih <= ih0; iw0 <= iw0 + scoord_t'({12'd0, f_stride_w}); iw <= iw0 + scoord_t'({12'd0, f_stride_w});
                    ow_base <= ow_base + step_w; elem_row <= ow_base + step_w; elem <= ow_base + step_w;
                end else begin
                    cb <= '0; ow <= '0; oh <= oh + 12'd1;
                    ih0 <= ih0 + scoord_t'({12'd0, f_stride_h}); ih <= ih0 + scoord_t'({12'd0, f_stride_h});
                    iw0 <= -scoord_t'({12'd0, f_pad_l}); iw <= -scoord_t'({12'd0, f_pad_l});
                    oh_base <= oh_base + step_h; ow_base <= oh_base + step_h;
                    elem_row <= oh_base + step_h; elem <= oh_base + step_h;
                end
            end
        end
    end

    // ---- accumulate: element data arrives one cycle after its grant ----------------
    logic e_valid_in, e_first;
    always_ff @(posedge clk) begin
        if (!rst_n) e_v <= 1'b0;
        else        e_v <= g_fire;
        e_valid_in <= e_in;
        e_first    <= (kh == '0) && (kw == '0);
        e_last     <= e_last_k;
    end

    logic signed [7:0]  acc_max [ROWS];
    logic signed [31:0] acc_sum [ROWS];
    logic [15:0]        acc_n;
    logic signed [7:0]  nx_max  [ROWS];
    logic signed [31:0] nx_sum  [ROWS];
    logic [15:0]        nx_n;
    // Only formed for an arriving element (e_v), the one cycle its result is
    // used (0 otherwise: no lane arithmetic on the other cycles).
    always_comb begin
        logic signed [7:0] x;
        nx_n = '0;
        nx_max = '{default: '0};
        nx_sum = '{default: '0};
        x = '0;
        if (e_v) begin
            nx_n = (e_first ? 16'd0 : acc_n) + {15'd0, e_valid_in};
            for (int r = 0; r < ROWS; r++) begin
                x = act_rd_data[8*r +: 8];
                nx_max[r] = e_first ? 8'sh80 : acc_max[r];
                nx_sum[r] = e_first ? 32'sd0 : acc_sum[r];
                if (e_valid_in) begin
                    if (x > nx_max[r]) nx_max[r] = x;
                    nx_sum[r] = nx_sum[r] + 32'(x) - 32'(signed'(f_in_zp));
                end
            end
        end
    end
    always_ff @(posedge clk) begin
        if (e_v) begin
            acc_n <= nx_n;
            for (int r = 0; r < ROWS; r++) begin
                acc_max[r] <= nx_max[r];
                acc_sum[r] <= nx_sum[r];
            end
        end
    end

    // ---- holding register and finish ---------------------------------------------------
    logic signed [7:0]  h_max [ROWS];
    logic signed [31:0] h_sum [ROWS];
    logic [15:0]        h_n;
    typedef enum logic [2:0] {F_IDLE, F_MBQM, F_WAIT, F_DIV, F_OUT} fstate_t;
    fstate_t fs;
    logic [5:0]         div_i;
    logic [15:0]        div_n;            // divisor (0: q = 0)
    logic               t_neg [ROWS];
    logic [32:0]        dq    [ROWS];     // dividend shifting out, quotient shifting in
    logic [16:0]        rem   [ROWS];
    logic [ROWS*8-1:0]  out_q;
    logic [ROWS*32-1:0] m_x, m_mult, m_y;
    logic [ROWS*6-1:0]  m_shift;
    logic               m_valid;

    for (genvar r = 0; r < ROWS; r++) begin : g_m
        assign m_x[32*r +: 32]    = h_sum[r];
        assign m_mult[32*r +: 32] = f_mult;
        assign m_shift[6*r +: 6]  = f_shift;
    end
    npu_mbqm #(.LANES(ROWS)) u_mbqm (
        .clk, .rst_n,
        .in_valid (fs == F_MBQM), .in_x (m_x), .in_mult (m_mult), .in_shift (m_shift),
        .out_valid (m_valid), .out_y (m_y)
    );

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            hold_busy <= 1'b0; fs <= F_IDLE;
        end else begin
            if (e_v && e_last) hold_busy <= 1'b1;
            case (fs)
                F_IDLE:  if (hold_busy) fs <= f_mode ? F_MBQM : F_OUT;
                F_MBQM:  fs <= F_WAIT;
                F_WAIT:  if (m_valid) fs <= F_DIV;
                F_DIV:   if (div_i == 6'd32) fs <= F_OUT;
                F_OUT:   if (wq_free != '0) begin fs <= F_IDLE; hold_busy <= 1'b0; end
                default: fs <= F_IDLE;
            endcase
        end
    end

    always_ff @(posedge clk) begin
        if (e_v && e_last) begin
            h_n <= nx_n;
            for (int r = 0; r < ROWS; r++) begin
                h_max[r] <= nx_max[r];
                h_sum[r] <= nx_sum[r];
            end
        end
        if (fs == F_WAIT && m_valid) begin
            div_i <= '0;
            div_n <= f_cip ? kk : h_n;
            for (int r = 0; r < ROWS; r++) begin
                logic signed [31:0] t;
                logic [15:0]        nn;
                t  = m_y[32*r +: 32];
                nn = f_cip ? kk : h_n;
                t_neg[r] <= t[31];
                // |t| + n/2 (33 bits: |INT32_MIN| + 2^15 fits).
                dq[r]  <= (t[31] ? 33'(-{t[31], t}) : {1'b0, t}) + 33'(nn >> 1);
                rem[r] <= '0;
            end
        end
        if (fs == F_DIV) begin
            div_i <= div_i + 6'd1;
            for (int r = 0; r < ROWS; r++) begin
                logic [17:0] rs;
                rs = {rem[r], dq[r][32]};
                if (rs >= {2'd0, div_n}) begin
                    rem[r] <= 17'(rs - {2'd0, div_n});
                    dq[r]  <= {dq[r][31:0], 1'b1};
                end else begin
                    rem[r] <= rs[16:0];
                    dq[r]  <= {dq[r][31:0], 1'b0};
                end
            end
        end
    end

    // Output word: max, or the rounded average + out_zp clamped to int8. Only
    // formed in F_OUT, the state that pushes it (0 otherwise: no lane
    // arithmetic, in hardware or in a simulator, on the other cycles).
    always_comb begin
        logic signed [34:0] v;
        out_q = '0;
        v = '0;
        if (fs == F_OUT) begin
            for (int r = 0; r < ROWS; r++) begin
                v = (div_n == '0) ? 35'sd0 : (t_neg[r] ? -35'(dq[r]) : 35'(dq[r]));
                v = v + 35'(signed'(f_out_zp));
                if (!f_mode)            out_q[8*r +: 8] = (h_n == '0) ? f_in_zp : h_max[r];
                else if (v < -35'sd128) out_q[8*r +: 8] = 8'h80;
                else if (v > 35'sd127)  out_q[8*r +: 8] = 8'h7f;
                else                    out_q[8*r +: 8] = v[7:0];
            end
        end
    end

    logic [19:0] out_ptr;
    assign wq_push = (fs == F_OUT) && (wq_free != '0);
    assign wq_data = out_q;
    assign wq_addr = out_ptr;
    always_ff @(posedge clk) begin
        if (state == S_IDLE) out_ptr <= f_out_addr;
        else if (wq_push)    out_ptr <= out_ptr + 20'd1;
    end

    // Busy until every element is gathered and the last window has been written.
    assign busy_tail = !g_done || e_v || hold_busy;
    assign busy = (state != S_IDLE);
endmodule
