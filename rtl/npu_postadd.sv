// npu_postadd: the requantising vector engine, one instruction at a time:
//
//   POST: ACC word p + PAR entry (bias, mult, shift) -> npu_requant -> ACT word
//         out_addr + p*out_stride. The 3 PAR words are read and checked first
//         (mult 0 or in [2^30, 2^31), shift in [-31, 30] in every lane); a bad
//         entry ends the instruction with err = 1 before any write, as the
//         golden ISS raises BAD_FIELD before writing.
//   ADD:  ACT words a[i], b[i] (two reads on the one ACT port: 2 cycles per
//         word) -> (x - zp) << add_left_shift -> npu_mbqm (2*ROWS lanes: a and
//         b) -> npu_requant with acc = MBQM(a'), bias = MBQM(b') (its wrapping
//         add is ADD's wrapping sum) and the instruction's out_mult/out_shift,
//         out_zp and clamps -> ACT word out_addr + i.
//
// Results go to the shared ACT write queue in order, so the write address is a
// counter at the queue side. Back-pressure is by credits: a word is started
// only if it will find a free queue entry (in_flight < wq_free), so the
// pipelines never need to stall.
//
// ADD with out_addr == a_addr or b_addr works (word i is written after it was
// read); a partial overlap with out_addr in (a_addr, a_addr + count) more than
// a few words ahead is not supported (the ISS reads everything first).
module npu_postadd
    import npu_isa_pkg::*;
#(
    parameter  int ROWS   = 16,
    parameter  int COLS   = 16,
    parameter  int ACC_AW = 12,
    parameter  int WQ_W   = 5          // width of the write-queue free count
) (
    input  logic                 clk,
    input  logic                 rst_n,
    input  logic                 start,
    input  logic [255:0]         instr,       // stable while busy
    output logic                 busy,
    output logic                 err,         // with !busy: PAR entry out of range
    // ACC read (data 1 cycle after en)
    output logic                 acc_rd_en,
    output logic [ACC_AW-1:0]    acc_rd_addr,
    input  logic [COLS*32-1:0]   acc_rd_data,
    // PAR read (data 1 cycle after en)
    output logic                 par_rd_en,
    output logic [19:0]          par_rd_addr,
    input  logic [COLS*32-1:0]   par_rd_data,
    // ACT read (arbitrated)
    output logic                 act_rd_req,
    input  logic                 act_rd_gnt,
    output logic [19:0]          act_rd_addr,
    input  logic [ROWS*8-1:0]    act_rd_data,
    // ACT write queue
    input  logic [WQ_W-1:0]      wq_free,
    output logic                 wq_push,
    output logic [19:0]          wq_addr,
    output logic [ROWS*8-1:0]    wq_data
);
    if (ROWS != COLS) begin : g_check
        $error("npu_postadd: this ISA version requires ROWS == COLS");
    end

    logic is_add;
    assign is_add = (instr[OPCODE_LSB +: OPCODE_W] == OP_ADD);

    // ---- fields ----------------------------------------------------------------
    logic [19:0] p_acc_addr, p_out_addr, p_count, a_count, a_a_addr, a_b_addr, a_out_addr;
    logic [11:0] p_out_stride;
    logic [15:0] p_par_addr;
    logic [7:0]  out_zp, cmin, cmax, a_zp, b_zp;
    logic [31:0] a_mult, b_mult, o_mult;
    logic [5:0]  a_shift, b_shift, o_shift;
    assign p_acc_addr   = instr[POST_ACC_ADDR_LSB   +: POST_ACC_ADDR_W];
    assign p_out_addr   = instr[POST_OUT_ADDR_LSB   +: POST_OUT_ADDR_W];
    assign p_count      = instr[POST_COUNT_LSB      +: POST_COUNT_W];
    assign p_out_stride = instr[POST_OUT_STRIDE_LSB +: POST_OUT_STRIDE_W];
    assign p_par_addr   = instr[POST_PAR_ADDR_LSB   +: POST_PAR_ADDR_W];
    assign a_a_addr     = instr[ADD_A_ADDR_LSB      +: ADD_A_ADDR_W];
    assign a_b_addr     = instr[ADD_B_ADDR_LSB      +: ADD_B_ADDR_W];
    assign a_out_addr   = instr[ADD_OUT_ADDR_LSB    +: ADD_OUT_ADDR_W];
    assign a_count      = instr[ADD_COUNT_LSB       +: ADD_COUNT_W];
    assign a_zp         = instr[ADD_A_ZP_LSB        +: ADD_A_ZP_W];
    assign b_zp         = instr[ADD_B_ZP_LSB        +: ADD_B_ZP_W];
    assign a_mult       = instr[ADD_A_MULT_LSB      +: ADD_A_MULT_W];
    assign b_mult       = instr[ADD_B_MULT_LSB      +: ADD_B_MULT_W];
    assign o_mult       = instr[ADD_OUT_MULT_LSB    +: ADD_OUT_MULT_W];
    assign a_shift      = instr[ADD_A_SHIFT_LSB     +: ADD_A_SHIFT_W];
    assign b_shift      = instr[ADD_B_SHIFT_LSB     +: ADD_B_SHIFT_W];
    assign o_shift      = instr[ADD_OUT_SHIFT_LSB   +: ADD_OUT_SHIFT_W];
    assign out_zp = is_add ? instr[ADD_OUT_ZP_LSB    +: ADD_OUT_ZP_W]    : instr[POST_OUT_ZP_LSB    +: POST_OUT_ZP_W];
    assign cmin   = is_add ? instr[ADD_CLAMP_MIN_LSB +: ADD_CLAMP_MIN_W] : instr[POST_CLAMP_MIN_LSB +: POST_CLAMP_MIN_W];
    assign cmax   = is_add ? instr[ADD_CLAMP_MAX_LSB +: ADD_CLAMP_MAX_W] : instr[POST_CLAMP_MAX_LSB +: POST_CLAMP_MAX_W];

    typedef enum logic [2:0] {S_IDLE, S_PAR0, S_PAR1, S_PAR2, S_PAR3, S_CHECK, S_RUN} state_t;
    state_t state;

    logic [19:0]        issued, pushed, count, rd_ptr, b_ptr, out_ptr;
    logic [WQ_W:0]      in_flight;
    logic               add_b_phase;          // ADD: next read is b[i]
    logic [COLS*32-1:0] bias_r, mult_r, shift_r;
    logic               bad;

    assign count = is_add ? a_count : p_count;
    assign busy  = (state != S_IDLE);

    // ---- PAR entry: 3 reads, then the range check --------------------------------
    assign par_rd_en   = (state == S_PAR0) || (state == S_PAR1) || (state == S_PAR2);
    assign par_rd_addr = {4'd0, p_par_addr} + ((state == S_PAR1) ? 20'd1 : (state == S_PAR2) ? 20'd2 : 20'd0);
    // Only evaluated in S_CHECK, the one state that uses it.
    always_comb begin
        bad = 1'b0;
        if (state == S_CHECK) begin
            for (int c = 0; c < COLS; c++) begin
                // mult: 0 or [2^30, 2^31) as int32; shift: int32 in [-31, 30].
                if (mult_r[32*c+31] || (!mult_r[32*c+30] && mult_r[32*c +: 32] != 32'd0)) bad = 1'b1;
                if ($signed(shift_r[32*c +: 32]) < -32'sd31 || $signed(shift_r[32*c +: 32]) > 32'sd30) bad = 1'b1;
            end
        end
    end

    // ---- issue: credits, then an ACC read (POST) or the a/b reads (ADD) -----------
    logic credit, post_issue, add_rd, add_issue_a, add_issue_b;
    assign credit      = in_flight < (WQ_W+1)'(wq_free);
    assign post_issue  = (state == S_RUN) && !is_add && (issued != count) && credit;
    assign add_rd      = (state == S_RUN) && is_add && (add_b_phase || ((issued != count) && credit));
    assign add_issue_a = add_rd && !add_b_phase && act_rd_gnt;
    assign add_issue_b = add_rd && add_b_phase && act_rd_gnt;
    assign acc_rd_en   = post_issue;
    assign acc_rd_addr = rd_ptr[ACC_AW-1:0];
    assign act_rd_req  = add_rd;
    assign act_rd_addr = add_b_phase ? b_ptr : rd_ptr;

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            state <= S_IDLE; err <= 1'b0; add_b_phase <= 1'b0;
            issued <= '0; pushed <= '0; in_flight <= '0;
        end else begin
            case (state)
                S_IDLE: if (start) begin
                    err <= 1'b0; issued <= '0; pushed <= '0; in_flight <= '0; add_b_phase <= 1'b0;
                    state <= is_add ? S_RUN : S_PAR0;
                end
                S_PAR0: state <= S_PAR1;
                S_PAR1: state <= S_PAR2;
                S_PAR2: state <= S_PAR3;
                S_PAR3: state <= S_CHECK;
                S_CHECK: if (bad) begin
                    err <= 1'b1; state <= S_IDLE;
                end else begin
                    state <= S_RUN;
                end
                S_RUN: begin
                    if (post_issue || add_issue_a) issued <= issued + 20'd1;
                    if (add_issue_a) add_b_phase <= 1'b1;
                    if (add_issue_b) add_b_phase <= 1'b0;
                    in_flight <= in_flight + (WQ_W+1)'(post_issue || add_issue_a) - (WQ_W+1)'(wq_push);
                    if (wq_push) pushed <= pushed + 20'd1;
                    if (pushed == count) state <= S_IDLE;
                end
                default: state <= S_IDLE;
            endcase
        end
    end

    // PAR capture (1 cycle after each read) and address pointers.
    always_ff @(posedge clk) begin
        if (state == S_PAR1) bias_r  <= par_rd_data;
        if (state == S_PAR2) mult_r  <= par_rd_data;
        if (state == S_PAR3) shift_r <= par_rd_data;
        if (state == S_IDLE) begin
            rd_ptr  <= is_add ? a_a_addr : p_acc_addr;
            b_ptr   <= a_b_addr;
            out_ptr <= is_add ? a_out_addr : p_out_addr;
        end
        if (post_issue || add_issue_a) rd_ptr <= rd_ptr + 20'd1;
        if (add_issue_b) b_ptr <= b_ptr + 20'd1;
        if (wq_push) out_ptr <= out_ptr + (is_add ? 20'd1 : {8'd0, p_out_stride});
    end

    // ---- datapath ------------------------------------------------------------------
    // POST: ACC data arrives the cycle after the read.
    logic post_v;
    // ADD: a[i] arrives the cycle after its grant (held in a_r); b[i] likewise,
    // and then both enter the input MBQM together.
    logic a_arrive, b_arrive;
    logic [ROWS*8-1:0] a_r;
    always_ff @(posedge clk) begin
        if (!rst_n) begin
            post_v <= 1'b0; a_arrive <= 1'b0; b_arrive <= 1'b0;
        end else begin
            post_v   <= post_issue;
            a_arrive <= add_issue_a;
            b_arrive <= add_issue_b;
        end
    end
    always_ff @(posedge clk) begin
        if (a_arrive) a_r <= act_rd_data;
    end

    logic [2*ROWS*32-1:0] m_x, m_mult, m_y;
    logic [2*ROWS*6-1:0]  m_shift;
    logic                 m_valid;
    logic signed [31:0] a_zp32, b_zp32;
    assign a_zp32 = 32'(signed'(a_zp));
    assign b_zp32 = 32'(signed'(b_zp));
    for (genvar r = 0; r < ROWS; r++) begin : g_addin
        // (x - zp) spans 9 bits, << 20 stays inside int32.
        logic signed [31:0] xa, xb;
        assign xa = 32'(signed'(a_r[8*r +: 8])) - a_zp32;
        assign xb = 32'(signed'(act_rd_data[8*r +: 8])) - b_zp32;
        assign m_x[32*r +: 32]          = xa <<< ADD_LEFT_SHIFT;
        assign m_x[32*(ROWS+r) +: 32]   = xb <<< ADD_LEFT_SHIFT;
        assign m_mult[32*r +: 32]        = a_mult;
        assign m_mult[32*(ROWS+r) +: 32] = b_mult;
        assign m_shift[6*r +: 6]         = a_shift;
        assign m_shift[6*(ROWS+r) +: 6]  = b_shift;
    end
    npu_mbqm #(.LANES(2*ROWS)) u_mbqm (
        .clk, .rst_n,
        .in_valid (b_arrive), .in_x (m_x), .in_mult (m_mult), .in_shift (m_shift),
        .out_valid (m_valid), .out_y (m_y)
    );

    logic [COLS*32-1:0] r_acc, r_bias, r_mult;
    logic [COLS*6-1:0]  r_shift;
    for (genvar c = 0; c < COLS; c++) begin : g_rq
        assign r_acc[32*c +: 32]  = is_add ? m_y[32*c +: 32] : acc_rd_data[32*c +: 32];
        assign r_bias[32*c +: 32] = is_add ? m_y[32*(ROWS+c) +: 32] : bias_r[32*c +: 32];
        assign r_mult[32*c +: 32] = is_add ? o_mult : mult_r[32*c +: 32];
        assign r_shift[6*c +: 6]  = is_add ? o_shift : shift_r[32*c +: 6];
    end
    npu_requant #(.COLS(COLS)) u_requant (
        .clk, .rst_n,
        .in_valid  (is_add ? m_valid : post_v),
        .in_acc    (r_acc), .in_bias (r_bias), .in_mult (r_mult), .in_shift (r_shift),
        .out_zp    (out_zp), .clamp_min (cmin), .clamp_max (cmax),
        .out_valid (wq_push),
        .out_q     (wq_data)
    );
    assign wq_addr = out_ptr;
endmodule
