// DMA engines: LOAD (device memory -> ACT/WGT/PAR) and STORE (ACT -> device
// memory), plus the window check both run before their first beat.
//
// Both engines walk the same 2-D pattern twice with independent counters: one
// walker issues the address bursts, the other moves the data, so addresses run
// ahead of the data by up to MAX_OUTST bursts without a per-burst FIFO. Bursts
// restart at every row and are INCR, at most 16 beats of 16 bytes, never
// crossing a 4 KiB boundary; both walkers apply the same rule, so burst
// boundaries agree. The data walker moves one chunk per cycle, a chunk being
// min(word, 16) bytes: a word narrower than the bus takes several chunks per
// beat, a wider one (PAR) several beats per word.
//
// Assumption (documented in tb/README.md): DMA_WIN_BASE is 16-byte aligned, so
// a word never straddles two beats (offsets are word multiples, checked by
// npu_decode).

// Window check of the whole 2-D extent before any beat: the first row whose end
// passes the window limit faults, at device address base + max(row start,
// window size) - the first byte outside (the ISS's definition). The common case
// (last row inside) takes one cycle; a fault walks the rows to find the first.
module npu_dma_window (
    input  logic        clk,
    input  logic        rst_n,
    input  logic        start,
    input  logic [31:0] base,
    input  logic [31:0] limit,
    input  logic [31:0] off,
    input  logic [31:0] stride,
    input  logic [15:0] count,
    input  logic [31:0] row_bytes,
    output logic        done,       // pulse
    output logic        fault,      // with done
    output logic [31:0] fault_addr
);
    logic [63:0] size, cur;
    logic [63:0] last_end;
    logic        chk, find;

    assign size = (limit > base) ? 64'(limit - base) : 64'd0;
    assign last_end = 64'(off) + 64'(count - 16'd1) * 64'(stride) + 64'(row_bytes);

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            chk <= 1'b0; find <= 1'b0; done <= 1'b0; fault <= 1'b0; fault_addr <= '0; cur <= '0;
        end else begin
            done <= 1'b0;
            fault <= 1'b0;
            if (start) begin
                chk <= 1'b1;
                cur <= 64'(off);
            end else if (chk) begin
                chk <= 1'b0;
                if (last_end <= size) done <= 1'b1;
                else find <= 1'b1;
            end else if (find) begin
                if (cur + 64'(row_bytes) > size) begin
                    find <= 1'b0;
                    done <= 1'b1;
                    fault <= 1'b1;
                    fault_addr <= base + 32'((cur > size) ? cur : size);
                end
                cur <= cur + 64'(stride);
            end
        end
    end
endmodule

// Burst length in beats: to the end of the row, at most 16, not past 4 KiB.
function automatic logic [4:0] npu_dma_burst_beats(input logic [31:0] cur, input logic [31:0] row_end);
    logic [31:0] rem;
    logic [8:0]  to4k;
    rem  = (row_end - cur + 32'd15) >> 4;
    to4k = 9'((13'd4096 - 13'(cur[11:0])) >> 4);
    if (rem > 32'd16 && to4k >= 9'd16) return 5'd16;
    if (32'(to4k) < rem) return 5'(to4k);
    return 5'(rem);
endfunction

// LOAD: AR bursts + R beats -> SRAM words.
module npu_dma_load
    import npu_isa_pkg::*;
#(
    parameter int unsigned ROWS      = DEFAULT_ROWS,
    parameter int unsigned COLS      = DEFAULT_COLS,
    parameter int unsigned ACT_DEPTH = ACT_DEFAULT_DEPTH,
    parameter int unsigned WGT_DEPTH = WGT_DEFAULT_DEPTH,
    parameter int unsigned PAR_DEPTH = PAR_DEFAULT_DEPTH,
    parameter int unsigned MAX_OUTST = 4,
    localparam int unsigned ACT_AW = $clog2(ACT_DEPTH),
    localparam int unsigned WGT_AW = $clog2(WGT_DEPTH),
    localparam int unsigned PAR_AW = $clog2(PAR_DEPTH)
) (
    input  logic                  clk,
    input  logic                  rst_n,
    input  logic                  clr,
    input  logic                  halt,
    input  logic                  i_valid,
    output logic                  i_ready,
    input  logic [INSTR_BITS-1:0] i_instr,
    output logic                  done,       // pulse, also on error / halt
    output logic                  err,        // with done
    output logic [7:0]            err_code,
    output logic [31:0]           err_addr,
    input  logic [31:0]           win_base,
    input  logic [31:0]           win_limit,
    // AXI read
    output logic                  ar_valid,
    input  logic                  ar_ready,
    output logic [31:0]           ar_addr,
    output logic [7:0]            ar_len,
    input  logic                  r_valid,
    output logic                  r_ready,
    input  logic [127:0]          r_data,
    input  logic [1:0]            r_resp,
    input  logic                  r_last,
    // SRAM write ports
    output logic                  act_req,
    input  logic                  act_gnt,
    output logic [ACT_AW-1:0]     act_addr,
    output logic [ROWS*8-1:0]     act_wdata,
    output logic                  wgt_we,
    output logic [WGT_AW-1:0]     wgt_addr,
    output logic [COLS*8-1:0]     wgt_wdata,
    output logic                  par_we,
    output logic [PAR_AW-1:0]     par_addr,
    output logic [COLS*32-1:0]    par_wdata,
    // status
    output logic                  busy,
    output logic [4:0]            bytes,      // payload bytes moved this cycle
    output logic                  stall       // waiting on the bus or the ACT port
);
    localparam int unsigned WMAX = ((ROWS > 4 * COLS) ? ROWS : 4 * COLS) > 16 ?
                                   ((ROWS > 4 * COLS) ? ROWS : 4 * COLS) : 16;  // bytes
    typedef enum logic [1:0] {S_IDLE, S_CHECK, S_RUN, S_DONE} state_e;
    state_e st;

    // Instruction fields, latched at start.
    logic [1:0]  mem;
    logic [31:0] off, dstride, rb, wb, ch;
    logic [19:0] saddr, sstride;
    logic [15:0] ycount, xwords;

    logic [31:0] wb_in;
    assign wb_in = (i_instr[LOAD_MEM_LSB +: LOAD_MEM_W] == MEM_ACT) ? 32'(ROWS) :
                   (i_instr[LOAD_MEM_LSB +: LOAD_MEM_W] == MEM_WGT) ? 32'(COLS) : 32'(4 * COLS);

    logic win_done, win_fault;
    logic [31:0] win_addr;
    npu_dma_window u_win (
        .clk, .rst_n, .start(st == S_IDLE && i_valid && !clr), .base(win_base), .limit(win_limit),
        .off(i_instr[LOAD_DRAM_OFFSET_LSB +: 32]), .stride(i_instr[LOAD_DRAM_STRIDE_LSB +: 32]),
        .count(i_instr[LOAD_Y_COUNT_LSB +: 16]), .row_bytes(32'(i_instr[LOAD_X_WORDS_LSB +: 16]) * wb_in),
        .done(win_done), .fault(win_fault), .fault_addr(win_addr));

    assign i_ready = st == S_IDLE;
    assign busy = st != S_IDLE;

    logic stop;         // no new bursts, no more SRAM writes
    logic errq;
    assign stop = halt || errq;

    // ---- address walker
    logic        ar_go, ar_hold;
    logic [31:0] ar_row, ar_cur;
    logic [15:0] ar_y;
    logic [3:0]  outst;
    logic [4:0]  ar_beats;
    assign ar_beats = npu_dma_burst_beats(ar_cur, ar_row + rb);
    assign ar_valid = st == S_RUN && ar_go && (ar_hold || (!stop && outst < 4'(MAX_OUTST)));
    assign ar_addr  = ar_cur;
    assign ar_len   = 8'(ar_beats - 5'd1);

    // ---- data walker
    logic        d_go;
    logic [31:0] d_row, d_ptr, d_left;
    logic [15:0] d_y;
    logic [19:0] d_srow, d_sram;
    logic [31:0] asm_pos;
    logic [WMAX*8-1:0] asm_q;
    logic        bq_valid;
    logic [127:0] bq;

    logic [127:0] chunk;
    logic [WMAX*8-1:0] word;
    logic word_end, row_end, beat_end, consume, discard;
    assign discard = stop;
    assign chunk = bq >> {d_ptr[3:0], 3'b000};
    always_comb begin
        word = asm_q;
        if (wb > 32'd16) word[asm_pos*8 +: 128] = chunk;
        else word = (WMAX*8)'(chunk);
    end
    assign word_end = asm_pos + ch == wb;
    assign row_end  = d_left == ch;
    assign beat_end = row_end || ((d_ptr[3:0] + ch[3:0]) == 4'd0 && ch <= 32'd16);
    assign act_req  = st == S_RUN && bq_valid && !discard && word_end && mem == MEM_ACT;
    assign consume  = st == S_RUN && bq_valid && !discard && (!(word_end && mem == MEM_ACT) || act_gnt);
    assign r_ready  = st == S_RUN && (discard || !bq_valid || (consume && beat_end));

    assign act_addr  = ACT_AW'(d_sram);
    assign act_wdata = word[ROWS*8-1:0];
    assign wgt_we    = consume && word_end && mem == MEM_WGT;
    assign wgt_addr  = WGT_AW'(d_sram);
    assign wgt_wdata = word[COLS*8-1:0];
    assign par_we    = consume && word_end && mem == MEM_PAR;
    assign par_addr  = PAR_AW'(d_sram);
    assign par_wdata = word[COLS*32-1:0];

    assign bytes = consume ? 5'(ch) : 5'd0;
    assign stall = (ar_valid && !ar_ready) || (act_req && !act_gnt);

    // The data pointer after this cycle's chunk: where an arriving beat belongs.
    logic [31:0] ptr_after;
    assign ptr_after = (consume && row_end) ? d_row + dstride : consume ? d_ptr + ch : d_ptr;

    logic r_hs;
    assign r_hs = r_valid && r_ready;

    always_ff @(posedge clk) begin
        if (!rst_n || clr) begin
            st <= S_IDLE; done <= 1'b0; err <= 1'b0; err_code <= '0; err_addr <= '0; errq <= 1'b0;
            mem <= '0; off <= '0; dstride <= '0; rb <= '0; wb <= 32'd16; ch <= 32'd16;
            saddr <= '0; sstride <= '0; ycount <= '0; xwords <= '0;
            ar_go <= 1'b0; ar_hold <= 1'b0; ar_row <= '0; ar_cur <= '0; ar_y <= '0; outst <= '0;
            d_go <= 1'b0; d_row <= '0; d_ptr <= '0; d_left <= '0; d_y <= '0; d_srow <= '0; d_sram <= '0;
            asm_pos <= '0; asm_q <= '0; bq_valid <= 1'b0; bq <= '0;
        end else begin
            done <= 1'b0;
            err <= 1'b0;
            unique case (st)
                S_IDLE: if (i_valid) begin
                    mem     <= i_instr[LOAD_MEM_LSB +: LOAD_MEM_W];
                    off     <= i_instr[LOAD_DRAM_OFFSET_LSB +: 32];
                    dstride <= i_instr[LOAD_DRAM_STRIDE_LSB +: 32];
                    saddr   <= i_instr[LOAD_SRAM_ADDR_LSB +: 20];
                    sstride <= i_instr[LOAD_SRAM_STRIDE_LSB +: 20];
                    ycount  <= i_instr[LOAD_Y_COUNT_LSB +: 16];
                    xwords  <= i_instr[LOAD_X_WORDS_LSB +: 16];
                    wb      <= wb_in;
                    ch      <= (wb_in < 32'd16) ? wb_in : 32'd16;
                    rb      <= 32'(i_instr[LOAD_X_WORDS_LSB +: 16]) * wb_in;
                    errq    <= 1'b0;
                    st      <= S_CHECK;
                end
                S_CHECK: if (win_done) begin
                    if (win_fault || halt) begin
                        done <= 1'b1; err <= win_fault; err_code <= npu_regmap_pkg::ERR_CODE_DMA_WINDOW; err_addr <= win_addr;
                        st <= S_IDLE;
                    end else begin
                        ar_go <= 1'b1; ar_y <= '0; ar_row <= win_base + off; ar_cur <= (win_base + off) & ~32'hF;
                        d_go <= 1'b1; d_y <= '0; d_row <= win_base + off; d_ptr <= win_base + off; d_left <= rb;
                        d_srow <= saddr; d_sram <= saddr; asm_pos <= '0; bq_valid <= 1'b0;
                        st <= S_RUN;
                    end
                end
                S_RUN: begin
                    // address walker
                    if (ar_valid) ar_hold <= !ar_ready;
                    if (ar_valid && ar_ready) begin
                        if (ar_cur + {23'd0, ar_beats, 4'd0} >= ar_row + rb) begin
                            if (ar_y + 16'd1 == ycount) ar_go <= 1'b0;
                            ar_y <= ar_y + 16'd1;
                            ar_row <= ar_row + dstride;
                            ar_cur <= (ar_row + dstride) & ~32'hF;
                        end else begin
                            ar_cur <= ar_cur + {23'd0, ar_beats, 4'd0};
                        end
                    end
                    if ((ar_valid && ar_ready) && !(r_hs && r_last)) outst <= outst + 4'd1;
                    else if (!(ar_valid && ar_ready) && (r_hs && r_last)) outst <= outst - 4'd1;
                    // bus error: first one wins, the address is the beat's first payload byte
                    if (r_hs && r_resp != 2'b00 && !errq) begin
                        errq <= 1'b1; err_code <= npu_regmap_pkg::ERR_CODE_DMA_BUS_ERROR; err_addr <= ptr_after;
                    end
                    // data walker
                    if (consume) begin
                        if (word_end) begin d_sram <= d_sram + 20'd1; asm_pos <= '0; asm_q <= '0; end
                        else begin asm_pos <= asm_pos + ch; asm_q <= word; end
                        if (row_end) begin
                            d_y <= d_y + 16'd1;
                            if (d_y + 16'd1 == ycount) d_go <= 1'b0;
                            d_row <= d_row + dstride; d_ptr <= d_row + dstride; d_left <= rb;
                            d_srow <= d_srow + sstride; d_sram <= d_srow + sstride;
                        end else begin
                            d_ptr <= d_ptr + ch; d_left <= d_left - ch;
                        end
                    end
                    if (r_hs && !discard) begin bq_valid <= 1'b1; bq <= r_data; end
                    else if (consume && beat_end) bq_valid <= 1'b0;
                    if (discard) bq_valid <= 1'b0;
                    // finished: every row moved (or stopped) and no burst in flight
                    if ((!d_go || stop) && outst == 4'd0 && !(ar_valid && ar_ready) && !ar_hold) begin
                        st <= S_DONE;
                    end
                end
                S_DONE: begin
                    done <= 1'b1; err <= errq; ar_go <= 1'b0; d_go <= 1'b0; st <= S_IDLE;
                end
            endcase
        end
    end

    // Opcode, flags and the other fields are the gate's and decoder's business.
    logic unused;
    assign unused = ^{xwords, d_y, ycount[0], i_instr};
endmodule

// STORE: ACT words -> W beats (with strobes), AW bursts, B responses.
module npu_dma_store
    import npu_isa_pkg::*;
#(
    parameter int unsigned ROWS      = DEFAULT_ROWS,
    parameter int unsigned ACT_DEPTH = ACT_DEFAULT_DEPTH,
    parameter int unsigned MAX_OUTST = 4,
    localparam int unsigned ACT_AW = $clog2(ACT_DEPTH)
) (
    input  logic                  clk,
    input  logic                  rst_n,
    input  logic                  clr,
    input  logic                  halt,
    input  logic                  i_valid,
    output logic                  i_ready,
    input  logic [INSTR_BITS-1:0] i_instr,
    output logic                  done,
    output logic                  err,
    output logic [7:0]            err_code,
    output logic [31:0]           err_addr,
    input  logic [31:0]           win_base,
    input  logic [31:0]           win_limit,
    // AXI write
    output logic                  aw_valid,
    input  logic                  aw_ready,
    output logic [31:0]           aw_addr,
    output logic [7:0]            aw_len,
    output logic                  w_valid,
    input  logic                  w_ready,
    output logic [127:0]          w_data,
    output logic [15:0]           w_strb,
    output logic                  w_last,
    input  logic                  b_valid,
    output logic                  b_ready,
    input  logic [1:0]            b_resp,
    // ACT read port (data one cycle after the grant)
    output logic                  act_req,
    input  logic                  act_gnt,
    output logic [ACT_AW-1:0]     act_addr,
    input  logic [ROWS*8-1:0]     act_rdata,
    output logic                  busy,
    output logic [4:0]            bytes,
    output logic                  stall
);
    localparam int unsigned WB = ROWS;
    localparam int unsigned CH = (WB < 16) ? WB : 16;          // bytes per chunk
    localparam int unsigned NCH = (WB > 16) ? WB / 16 : 1;     // chunks per word
    localparam int unsigned HW = (WB > 16) ? WB * 8 : 128;
    typedef enum logic [1:0] {S_IDLE, S_CHECK, S_RUN, S_DONE} state_e;
    state_e st;

    logic [31:0] off, dstride, rb;
    logic [19:0] saddr, sstride;
    logic [15:0] ycount;

    logic win_done, win_fault;
    logic [31:0] win_addr;
    npu_dma_window u_win (
        .clk, .rst_n, .start(st == S_IDLE && i_valid && !clr), .base(win_base), .limit(win_limit),
        .off(i_instr[STORE_DRAM_OFFSET_LSB +: 32]), .stride(i_instr[STORE_DRAM_STRIDE_LSB +: 32]),
        .count(i_instr[STORE_Y_COUNT_LSB +: 16]), .row_bytes(32'(i_instr[STORE_X_WORDS_LSB +: 16]) * 32'(WB)),
        .done(win_done), .fault(win_fault), .fault_addr(win_addr));

    assign i_ready = st == S_IDLE;
    assign busy = st != S_IDLE;

    logic errq, stop;
    assign stop = halt || errq;

    // Burst bookkeeping: a burst started on either channel is finished on both,
    // even when stopping, so AW and W stay consistent (AXI).
    logic [31:0] aw_bursts, w_bursts;

    // ---- address walker
    logic        aw_go, aw_hold;
    logic [31:0] aw_row, aw_cur;
    logic [15:0] aw_y;
    logic [3:0]  b_outst;
    logic [4:0]  aw_beats;
    assign aw_beats = npu_dma_burst_beats(aw_cur, aw_row + rb);
    assign aw_valid = st == S_RUN && aw_go &&
                      (aw_hold || ((!stop || aw_bursts < w_bursts) && b_outst < 4'(MAX_OUTST)));
    assign aw_addr  = aw_cur;
    assign aw_len   = 8'(aw_beats - 5'd1);

    // First payload byte of each burst in flight, for ERR_ADDR on a BRESP error.
    logic [31:0] baddr_q [MAX_OUTST];
    logic [$clog2(MAX_OUTST)-1:0] bwp, brp;

    // ---- data walker (stage 0: pick a chunk, read ACT at a word's first chunk)
    logic        w_go, w_new_beat;
    logic [31:0] w_row, w_ptr, w_left;
    logic [15:0] w_y;
    logic [19:0] w_srow, w_sram;
    logic [$clog2(NCH+1)-1:0] w_ci;
    logic [4:0]  w_bib;           // beat index in the burst
    logic        between;         // at a burst boundary
    assign between = w_new_beat && w_bib == 5'd0;

    // output beat FIFO (4 entries) feeding W
    logic [144:0] wf [4];
    logic [2:0]   wf_cnt;
    logic [1:0]   wf_wp, wf_rp;

    // stage 1 (data of the chunk picked last cycle)
    logic        s1_valid, s1_first, s1_beat_end, s1_last;
    logic [3:0]  s1_lane;
    logic [$clog2(NCH+1)-1:0] s1_ci;
    logic [HW-1:0] hold;
    logic [127:0] basm;
    logic [15:0]  bstrb;

    logic row_end_c, beat_end_c, burst_end_c, room, may_start, step;
    logic [31:0] ptr_next;
    assign ptr_next    = w_ptr + 32'(CH);
    assign row_end_c   = w_left == 32'(CH);
    assign beat_end_c  = row_end_c || ptr_next[3:0] == 4'd0;
    assign burst_end_c = row_end_c || w_bib == 5'd15 || ptr_next[11:0] == 12'd0;
    assign room        = 3'(wf_cnt) + ((s1_valid && s1_beat_end) ? 3'd1 : 3'd0) <= 3'd2;
    assign may_start   = !between || !stop || w_bursts < aw_bursts;
    assign act_req     = st == S_RUN && w_go && room && may_start && w_ci == '0;
    assign step        = st == S_RUN && w_go && room && may_start && (w_ci != '0 || act_gnt);
    assign act_addr    = ACT_AW'(w_sram);

    logic [HW-1:0] word;
    logic [127:0] chunk;
    always_comb begin
        word = (s1_ci == '0) ? HW'(act_rdata) : hold;
        chunk = (WB > 16) ? word[s1_ci * 128 +: 128] : 128'(word);
    end

    logic [127:0] beat_data;
    logic [15:0]  beat_strb;
    assign beat_data = basm | (chunk << {s1_lane, 3'b000});
    assign beat_strb = bstrb | (16'((32'd1 << CH) - 32'd1) << s1_lane);

    assign w_valid = wf_cnt != 3'd0;
    assign {w_last, w_strb, w_data} = wf[wf_rp];
    assign b_ready = 1'b1;
    assign bytes = (w_valid && w_ready) ? 5'($countones(w_strb)) : 5'd0;
    assign stall = (aw_valid && !aw_ready) || (w_valid && !w_ready) || (act_req && !act_gnt);

    logic w_hs, b_hs, aw_hs;
    assign w_hs = w_valid && w_ready;
    assign b_hs = b_valid && b_ready;
    assign aw_hs = aw_valid && aw_ready;

    always_ff @(posedge clk) begin
        if (!rst_n || clr) begin
            st <= S_IDLE; done <= 1'b0; err <= 1'b0; err_code <= '0; err_addr <= '0; errq <= 1'b0;
            off <= '0; dstride <= '0; rb <= '0; saddr <= '0; sstride <= '0; ycount <= '0;
            aw_bursts <= '0; w_bursts <= '0;
            aw_go <= 1'b0; aw_hold <= 1'b0; aw_row <= '0; aw_cur <= '0; aw_y <= '0; b_outst <= '0;
            bwp <= '0; brp <= '0;
            w_go <= 1'b0; w_new_beat <= 1'b1; w_row <= '0; w_ptr <= '0; w_left <= '0; w_y <= '0;
            w_srow <= '0; w_sram <= '0; w_ci <= '0; w_bib <= '0;
            wf_cnt <= '0; wf_wp <= '0; wf_rp <= '0;
            s1_valid <= 1'b0; s1_first <= 1'b0; s1_beat_end <= 1'b0; s1_last <= 1'b0; s1_lane <= '0; s1_ci <= '0;
            hold <= '0; basm <= '0; bstrb <= '0;
        end else begin
            done <= 1'b0;
            err <= 1'b0;
            unique case (st)
                S_IDLE: if (i_valid) begin
                    off     <= i_instr[STORE_DRAM_OFFSET_LSB +: 32];
                    dstride <= i_instr[STORE_DRAM_STRIDE_LSB +: 32];
                    saddr   <= i_instr[STORE_SRAM_ADDR_LSB +: 20];
                    sstride <= i_instr[STORE_SRAM_STRIDE_LSB +: 20];
                    ycount  <= i_instr[STORE_Y_COUNT_LSB +: 16];
                    rb      <= 32'(i_instr[STORE_X_WORDS_LSB +: 16]) * 32'(WB);
                    errq    <= 1'b0;
                    st      <= S_CHECK;
                end
                S_CHECK: if (win_done) begin
                    if (win_fault || halt) begin
                        done <= 1'b1; err <= win_fault; err_code <= npu_regmap_pkg::ERR_CODE_DMA_WINDOW; err_addr <= win_addr;
                        st <= S_IDLE;
                    end else begin
                        aw_go <= 1'b1; aw_y <= '0; aw_row <= win_base + off; aw_cur <= (win_base + off) & ~32'hF;
                        aw_bursts <= '0; w_bursts <= '0;
                        w_go <= 1'b1; w_y <= '0; w_row <= win_base + off; w_ptr <= win_base + off; w_left <= rb;
                        w_srow <= saddr; w_sram <= saddr; w_ci <= '0; w_bib <= '0; w_new_beat <= 1'b1;
                        st <= S_RUN;
                    end
                end
                S_RUN: begin
                    // ---- AW
                    if (aw_valid) aw_hold <= !aw_ready;
                    if (aw_hs) begin
                        aw_bursts <= aw_bursts + 32'd1;
                        baddr_q[bwp] <= (aw_cur < aw_row) ? aw_row : aw_cur;
                        bwp <= bwp + 1'b1;
                        if (aw_cur + {23'd0, aw_beats, 4'd0} >= aw_row + rb) begin
                            if (aw_y + 16'd1 == ycount) aw_go <= 1'b0;
                            aw_y <= aw_y + 16'd1;
                            aw_row <= aw_row + dstride;
                            aw_cur <= (aw_row + dstride) & ~32'hF;
                        end else begin
                            aw_cur <= aw_cur + {23'd0, aw_beats, 4'd0};
                        end
                    end
                    if (aw_hs && !b_hs) b_outst <= b_outst + 4'd1;
                    else if (!aw_hs && b_hs) b_outst <= b_outst - 4'd1;
                    if (b_hs) begin
                        brp <= brp + 1'b1;
                        if (b_resp != 2'b00 && !errq) begin
                            errq <= 1'b1; err_code <= npu_regmap_pkg::ERR_CODE_DMA_BUS_ERROR; err_addr <= baddr_q[brp];
                        end
                    end
                    // ---- data walker, stage 0
                    s1_valid <= step;
                    if (step) begin
                        s1_ci <= w_ci;
                        s1_lane <= w_ptr[3:0];
                        s1_first <= between;
                        s1_beat_end <= beat_end_c;
                        s1_last <= beat_end_c && burst_end_c;
                        if (between) w_bursts <= w_bursts + 32'd1;
                        w_new_beat <= beat_end_c;
                        if (beat_end_c) w_bib <= burst_end_c ? 5'd0 : w_bib + 5'd1;
                        if (WB > 16 && w_ci != $bits(w_ci)'(NCH - 1)) w_ci <= w_ci + 1'b1;
                        else begin w_ci <= '0; w_sram <= w_sram + 20'd1; end
                        if (row_end_c) begin
                            w_y <= w_y + 16'd1;
                            if (w_y + 16'd1 == ycount) w_go <= 1'b0;
                            w_row <= w_row + dstride; w_ptr <= w_row + dstride; w_left <= rb;
                            w_srow <= w_srow + sstride; w_sram <= w_srow + sstride; w_ci <= '0;
                        end else begin
                            w_ptr <= ptr_next; w_left <= w_left - 32'(CH);
                        end
                    end
                    // ---- stage 1: merge the chunk into the beat, push finished beats
                    if (s1_valid) begin
                        if (s1_ci == '0) hold <= HW'(act_rdata);
                        if (s1_beat_end) begin
                            wf[wf_wp] <= {s1_last, beat_strb, beat_data};
                            wf_wp <= wf_wp + 2'd1;
                            basm <= '0; bstrb <= '0;
                        end else begin
                            basm <= beat_data; bstrb <= beat_strb;
                        end
                    end
                    if ((s1_valid && s1_beat_end) && !w_hs) wf_cnt <= wf_cnt + 3'd1;
                    else if (!(s1_valid && s1_beat_end) && w_hs) wf_cnt <= wf_cnt - 3'd1;
                    if (w_hs) wf_rp <= wf_rp + 2'd1;
                    // ---- finished: both channels at a burst boundary, all answered
                    if ((!w_go || (stop && between)) && !step && !s1_valid && wf_cnt == 3'd0
                        && (!aw_go || stop) && !aw_hold && !aw_hs && aw_bursts == w_bursts
                        && b_outst == 4'd0 && !b_hs) begin
                        st <= S_DONE;
                    end
                end
                S_DONE: begin
                    done <= 1'b1; err <= errq; aw_go <= 1'b0; w_go <= 1'b0; st <= S_IDLE;
                end
            endcase
        end
    end

    logic unused;
    assign unused = ^{s1_first, w_y[0], ycount[0], i_instr};
endmodule
