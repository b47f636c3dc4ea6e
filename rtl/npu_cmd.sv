// Command processor: fetches the instruction stream over the AXI master
// (read port 0 of npu_axi_arb), checks each instruction (npu_decode), hands
// engine instructions to per-engine FIFOs of QDEPTH entries, executes NOP,
// FENCE and END itself, and owns the program state: STATUS, STATUS_PC, the
// error registers, the watchdog, abort and soft reset.
//
// Errors and aborts latch the first cause and raise `halt`: nothing new is
// dispatched or started, engines finish the bursts they have in flight; once
// everything is quiet (`quiet`) the error becomes visible (STATUS.ERROR,
// IRQ). A soft reset while running does the same drain first, then pulses
// `sclr` (clearing engines, queues and tokens) - so no AXI transaction is ever
// cut in half.

// Register FIFO for the engine queues.
module npu_cmd_fifo #(
    parameter int unsigned W     = 288,
    parameter int unsigned DEPTH = 16
) (
    input  logic         clk,
    input  logic         rst_n,
    input  logic         clr,
    input  logic         push,
    input  logic [W-1:0] din,
    output logic         full,
    input  logic         pop,
    output logic [W-1:0] dout,
    output logic         empty
);
    localparam int unsigned PW = $clog2(DEPTH);
    logic [W-1:0] mem [DEPTH];
    logic [PW-1:0] wp, rp;
    logic [PW:0]   cnt;

    assign full  = cnt == (PW+1)'(DEPTH);
    assign empty = cnt == '0;
    assign dout  = mem[rp];

    always_ff @(posedge clk) begin
        if (push && !full) mem[wp] <= din;
        if (!rst_n || clr) begin
            wp <= '0; rp <= '0; cnt <= '0;
        end else begin
            if (push && !full) wp <= wp + 1'b1;
            if (pop && !empty) rp <= rp + 1'b1;
            cnt <= cnt + (PW+1)'(push && !full) - (PW+1)'(pop && !empty);
        end
    end
endmodule

module npu_cmd
    import npu_isa_pkg::*;
#(
    parameter int unsigned ROWS      = DEFAULT_ROWS,
    parameter int unsigned COLS      = DEFAULT_COLS,
    parameter int unsigned ACT_DEPTH = ACT_DEFAULT_DEPTH,
    parameter int unsigned WGT_DEPTH = WGT_DEFAULT_DEPTH,
    parameter int unsigned PAR_DEPTH = PAR_DEFAULT_DEPTH,
    parameter int unsigned ACC_DEPTH = ACC_DEFAULT_DEPTH,
    parameter int unsigned QDEPTH    = QUEUE_DEPTH,
    parameter int unsigned IBUF      = 8       // prefetched instructions
) (
    input  logic                  clk,
    input  logic                  rst_n,
    // registers
    input  logic [31:0]           cmd_base,
    input  logic [31:0]           cmd_len,
    input  logic [31:0]           watchdog,
    input  logic                  doorbell,
    input  logic                  abort,
    input  logic                  soft_reset,
    output logic                  busy,
    output logic                  done,
    output logic                  error,
    output logic [7:0]            err_code,
    output logic [31:0]           err_pc,
    output logic [31:0]           err_addr,
    output logic [31:0]           status_pc,
    output logic                  irq_done,    // one-cycle set pulses
    output logic                  irq_error,
    output logic                  start,       // doorbell accepted (perf clear)
    output logic                  sclr,        // soft clear of engines, queues, tokens
    output logic                  halt,
    // fetch: AXI read requester
    output logic                  ar_valid,
    input  logic                  ar_ready,
    output logic [31:0]           ar_addr,
    output logic [7:0]            ar_len,
    input  logic                  r_valid,
    output logic                  r_ready,
    input  logic [127:0]          r_data,
    input  logic [1:0]            r_resp,
    // engine queues: 0 load, 1 compute, 2 store
    output logic [2:0]            q_valid,
    input  logic [2:0]            q_pop,
    output logic [INSTR_BITS-1:0] q_instr [3],
    output logic [31:0]           q_pc [3],
    // engine side
    input  logic                  engines_idle,  // gates idle (queues checked here)
    input  logic                  quiet,         // no AXI transaction in flight anywhere
    input  logic                  tok_any,       // a token counter is non-zero
    input  logic                  eng_err,       // an engine / token error (first wins)
    input  logic [7:0]            eng_err_code,
    input  logic [31:0]           eng_err_pc,
    input  logic [31:0]           eng_err_addr,
    input  logic [1:0]            eng_retired,   // engine instructions retired this cycle
    output logic                  disp_retired
);
    localparam logic [1:0] ENG_LOAD = 2'd1, ENG_COMPUTE = 2'd2, ENG_STORE = 2'd3;  // npu_decode

    // ---------------------------------------------------------------- state
    logic        running;     // between doorbell and the end of the program
    logic        ending;      // END dispatched: fetch no more
    logic        errp;        // error latched, draining
    logic        srstp;       // soft reset requested while running, draining
    logic [7:0]  e_code;
    logic [31:0] e_pc, e_addr;
    logic [31:0] pc;
    logic [31:0] len_q, base_q;

    assign halt = errp || srstp;
    assign busy = running;
    assign status_pc = pc;

    // ---------------------------------------------------------------- fetch
    // Instruction buffer: decode result (npu_decode, below), bus-error flag,
    // 256-bit instruction.
    localparam int unsigned BW = $clog2(IBUF);
    localparam int unsigned DW = 12;          // {err[7:0], engine[1:0], is_end, is_fence}
    logic [DW+INSTR_BITS:0] ibuf [IBUF];
    logic [BW-1:0] ib_wp, ib_rp;
    logic [BW:0]   ib_cnt;
    logic [BW:0]   inflight;      // instructions requested, not yet in the buffer
    logic [31:0]   fidx;          // next instruction index to request
    logic          f_hold, f_half, f_err;
    logic [127:0]  f_lo;

    logic [31:0] faddr, nrem;
    logic [BW:0] free;
    logic [3:0]  nfetch;
    logic [8:0]  to4k;
    always_comb begin
        faddr = base_q + (fidx << 5);
        nrem  = len_q - fidx;
        free  = (BW+1)'(IBUF) - ib_cnt - inflight;
        to4k  = 9'((13'd4096 - 13'(faddr[11:0])) >> 5);
        nfetch = 4'd4;
        if (nrem < 32'(nfetch)) nfetch = 4'(nrem);
        if ((BW+1)'(nfetch) > free) nfetch = 4'(free);
        if (9'(nfetch) > to4k) nfetch = 4'(to4k);
    end
    assign ar_valid = f_hold || (running && !halt && !ending && fidx < len_q && nfetch != 4'd0);
    assign ar_addr  = faddr;
    assign ar_len   = 8'({nfetch, 1'b0} - 5'd1);
    assign r_ready  = 1'b1;       // buffer space is reserved at request time

    logic ib_push, ib_pop;
    assign ib_push = r_valid && f_half;

    // ---------------------------------------------------------------- decode
    // Each instruction is decoded once, as it enters the buffer, and the result
    // is kept beside it: the decode is a function of the word alone, so this
    // gives the dispatcher exactly what decoding the head would, without the
    // (wide, 64-bit) checks on the dispatch path - and a simulator evaluates
    // them once per instruction instead of on every cycle.
    logic [DW-1:0] f_dec;
    npu_decode #(.ROWS(ROWS), .COLS(COLS), .ACT_DEPTH(ACT_DEPTH), .WGT_DEPTH(WGT_DEPTH),
                 .PAR_DEPTH(PAR_DEPTH), .ACC_DEPTH(ACC_DEPTH))
        u_dec (.valid(ib_push), .instr({r_data, f_lo}), .err(f_dec[11:4]), .engine(f_dec[3:2]),
               .is_end(f_dec[1]), .is_fence(f_dec[0]));

    logic [INSTR_BITS-1:0] head;
    logic head_berr, head_valid;
    logic [7:0] d_err;
    logic [1:0] d_eng;
    logic d_end, d_fence;
    assign {d_err, d_eng, d_end, d_fence, head_berr, head} = ibuf[ib_rp];
    assign head_valid = ib_cnt != '0;

    // ---------------------------------------------------------------- queues
    logic [2:0] qf_push, qf_full, qf_empty;
    logic [INSTR_BITS+31:0] qf_dout [3];
    for (genvar e = 0; e < 3; e++) begin : g_q
        npu_cmd_fifo #(.W(INSTR_BITS + 32), .DEPTH(QDEPTH)) u_fifo (
            .clk, .rst_n, .clr(sclr || start), .push(qf_push[e]), .din({pc, head}), .full(qf_full[e]),
            .pop(q_pop[e]), .dout(qf_dout[e]), .empty(qf_empty[e]));
        assign q_valid[e] = !qf_empty[e];
        assign {q_pc[e], q_instr[e]} = qf_dout[e];
    end

    // ---------------------------------------------------------------- dispatch
    logic all_idle;
    assign all_idle = engines_idle && (&qf_empty);

    logic [2:0] tgt;              // one-hot queue of the head instruction
    assign tgt = (d_eng == ENG_LOAD) ? 3'b001 : (d_eng == ENG_COMPUTE) ? 3'b010 :
                 (d_eng == ENG_STORE) ? 3'b100 : 3'b000;

    logic can_disp, d_bad;
    assign can_disp = running && !halt && !ending && head_valid;
    assign d_bad = head_berr || d_err != npu_regmap_pkg::ERR_CODE_NONE;
    assign qf_push = (can_disp && !d_bad && (tgt & ~qf_full) != 3'b000) ? tgt : 3'b000;

    logic disp_nop, disp_fence, disp_end;
    assign disp_nop   = can_disp && !d_bad && tgt == 3'b000 && !d_fence && !d_end;
    assign disp_fence = can_disp && !d_bad && d_fence && all_idle;
    assign disp_end   = can_disp && !d_bad && d_end && all_idle && !tok_any;
    assign ib_pop = (qf_push != 3'b000) || disp_nop || disp_fence || disp_end;
    assign disp_retired = disp_nop || disp_fence || disp_end;

    // Errors found by the dispatcher this cycle (priority: the instruction's own).
    logic       c_err;
    logic [7:0] c_code;
    logic [31:0] c_addr, c_pc;
    logic [31:0] wd_cnt;
    always_comb begin
        c_err = 1'b0; c_code = npu_regmap_pkg::ERR_CODE_NONE; c_addr = '0; c_pc = pc;
        if (can_disp && head_berr) begin
            c_err = 1'b1; c_code = npu_regmap_pkg::ERR_CODE_DMA_BUS_ERROR; c_addr = base_q + (pc << 5);
        end else if (can_disp && d_err != npu_regmap_pkg::ERR_CODE_NONE) begin
            c_err = 1'b1; c_code = d_err;
        end else if (can_disp && d_end && all_idle && tok_any) begin
            c_err = 1'b1; c_code = npu_regmap_pkg::ERR_CODE_TOKEN_LEAK;
        end else if (running && !halt && !ending && !head_valid && pc >= len_q) begin
            c_err = 1'b1; c_code = npu_regmap_pkg::ERR_CODE_CMD_OVERRUN;
        end else if (running && !halt && watchdog != 32'd0 && wd_cnt >= watchdog) begin
            c_err = 1'b1; c_code = npu_regmap_pkg::ERR_CODE_WATCHDOG;
        end else if (running && !halt && abort) begin
            c_err = 1'b1; c_code = npu_regmap_pkg::ERR_CODE_ABORTED;
        end
    end

    assign start = doorbell && !running;

    always_ff @(posedge clk) begin
        if (!rst_n || sclr) begin
            running <= 1'b0; ending <= 1'b0; errp <= 1'b0; srstp <= 1'b0;
            done <= 1'b0; error <= 1'b0; e_code <= '0; e_pc <= '0; e_addr <= '0; pc <= '0;
            len_q <= '0; base_q <= '0;
            ib_wp <= '0; ib_rp <= '0; ib_cnt <= '0; inflight <= '0; fidx <= '0;
            f_hold <= 1'b0; f_half <= 1'b0; f_err <= 1'b0; f_lo <= '0;
            wd_cnt <= '0;
        end else begin
            // ---- doorbell
            if (start) begin
                running <= 1'b1; ending <= 1'b0; done <= 1'b0; error <= 1'b0;
                e_code <= '0; e_pc <= '0; e_addr <= '0; pc <= '0;
                len_q <= cmd_len; base_q <= cmd_base & ~32'h1F;
                ib_wp <= '0; ib_rp <= '0; ib_cnt <= '0; inflight <= '0; fidx <= '0;
                f_half <= 1'b0; wd_cnt <= '0;
            end
            // ---- fetch
            if (ar_valid) f_hold <= !ar_ready;
            if (ar_valid && ar_ready) fidx <= fidx + 32'(nfetch);
            if (r_valid) begin
                f_half <= !f_half;
                if (!f_half) begin f_lo <= r_data; f_err <= r_resp != 2'b00; end
                else begin
                    ibuf[ib_wp] <= {f_dec, f_err || r_resp != 2'b00, r_data, f_lo};
                    ib_wp <= ib_wp + 1'b1;
                end
            end
            if (!start) begin
                ib_cnt <= ib_cnt + (BW+1)'(ib_push) - (BW+1)'(ib_pop);
                inflight <= inflight + ((ar_valid && ar_ready) ? (BW+1)'(nfetch) : '0) - (BW+1)'(ib_push);
            end
            if (ib_pop) begin
                ib_rp <= ib_rp + 1'b1;
                pc <= pc + 32'd1;
            end
            if (disp_end) ending <= 1'b1;
            // ---- watchdog: cycles without a retirement
            if (!running || eng_retired != 2'd0 || disp_retired) wd_cnt <= '0;
            else wd_cnt <= wd_cnt + 32'd1;
            // ---- errors: the first one wins
            if (running && !errp && !srstp) begin
                if (eng_err) begin
                    errp <= 1'b1; e_code <= eng_err_code; e_pc <= eng_err_pc; e_addr <= eng_err_addr;
                end else if (c_err) begin
                    errp <= 1'b1; e_code <= c_code; e_pc <= c_pc; e_addr <= c_addr;
                end
            end
            if (soft_reset && running) srstp <= 1'b1;
            // ---- the end: everything quiet, then DONE or ERROR
            if (running && quiet && all_idle && !srstp) begin
                if (errp) begin
                    running <= 1'b0; error <= 1'b1; errp <= 1'b0;
                end else if (ending) begin
                    running <= 1'b0; done <= 1'b1;
                end
            end
        end
    end

    // Outstanding fetch bursts are tracked by the arbiter (`quiet`).
    assign irq_done  = running && quiet && all_idle && !srstp && !errp && ending;
    assign irq_error = running && quiet && all_idle && !srstp && errp;
    assign err_code  = e_code;
    assign err_pc    = e_pc;
    assign err_addr  = e_addr;

    // Soft reset: at once when idle, after the drain when running.
    assign sclr = (soft_reset && !running) || (srstp && quiet && all_idle);

endmodule
