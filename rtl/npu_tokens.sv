// Dependency tokens (docs/architecture.md 4.3): the four counters l2c, c2l,
// c2s, s2c (index TOK_* below) and, per engine, the gate that pops an
// instruction's tokens before it starts and pushes them after it is done.

// The four counters. Each is popped by exactly one engine and pushed by
// exactly one other, so a pop and a push can meet in one cycle; a push that
// would take a counter above TOKEN_MAX (without a pop in the same cycle,
// which the ISS also treats as simultaneous) is flagged in `ovf` and dropped.
module npu_tokens
    import npu_isa_pkg::*;
(
    input  logic       clk,
    input  logic       rst_n,
    input  logic       clr,         // soft reset / doorbell: all counters to 0
    input  logic [3:0] pop,         // only asserted for non-zero counters
    input  logic [3:0] push,
    output logic [3:0] nonzero,
    output logic [3:0] ovf
);
    logic [7:0] cnt [4];

    for (genvar c = 0; c < 4; c++) begin : g_ctr
        assign nonzero[c] = cnt[c] != 8'd0;
        assign ovf[c] = push[c] && !pop[c] && cnt[c] == 8'(TOKEN_MAX);
        always_ff @(posedge clk) begin
            if (!rst_n || clr) cnt[c] <= 8'd0;
            else if (push[c] && !pop[c] && !ovf[c]) cnt[c] <= cnt[c] + 8'd1;
            else if (pop[c] && !push[c]) cnt[c] <= cnt[c] - 8'd1;
        end
    end
endmodule

// Sits between an engine's instruction queue and the engine: takes the head
// (freeing its queue slot), waits until every counter it pops is non-zero,
// pops them, hands the instruction to the engine, and pushes its tokens when
// the engine reports done. The *_CTR parameters map the dependency flags of
// this engine to counters (one-hot, 0 = the engine has no such stage).
module npu_token_gate
    import npu_isa_pkg::*;
#(
    parameter logic [3:0] POP_PREV_CTR  = 4'b0000,
    parameter logic [3:0] POP_NEXT_CTR  = 4'b0000,
    parameter logic [3:0] PUSH_PREV_CTR = 4'b0000,
    parameter logic [3:0] PUSH_NEXT_CTR = 4'b0000
) (
    input  logic                  clk,
    input  logic                  rst_n,
    input  logic                  clr,
    input  logic                  halt,      // error/abort: start nothing new
    // instruction queue head
    input  logic                  q_valid,
    input  logic [INSTR_BITS-1:0] q_instr,
    input  logic [31:0]           q_pc,
    output logic                  q_pop,
    // token counters
    input  logic [3:0]            tok_nonzero,
    output logic [3:0]            tok_pop,
    output logic [3:0]            tok_push,
    // engine
    output logic                  e_valid,
    input  logic                  e_ready,
    output logic [INSTR_BITS-1:0] e_instr,
    input  logic                  e_done,
    input  logic                  e_err,     // with e_done: the instruction failed
    // status
    output logic                  idle,
    output logic [31:0]           pc,        // of the instruction held
    output logic                  retire,    // done without error
    output logic [3:0]            stall_tok  // waiting on these counters this cycle
);
    typedef enum logic [1:0] {S_IDLE, S_TOK, S_ISSUE, S_RUN} state_e;
    state_e st;
    logic [INSTR_BITS-1:0] ins;

    logic [3:0] need, give;
    assign need = (ins[DEP_POP_PREV_BIT] ? POP_PREV_CTR : 4'b0) | (ins[DEP_POP_NEXT_BIT] ? POP_NEXT_CTR : 4'b0);
    assign give = (ins[DEP_PUSH_PREV_BIT] ? PUSH_PREV_CTR : 4'b0) | (ins[DEP_PUSH_NEXT_BIT] ? PUSH_NEXT_CTR : 4'b0);

    logic tok_ok;
    assign tok_ok = (need & ~tok_nonzero) == 4'b0;

    assign q_pop     = st == S_IDLE && q_valid && !halt;
    assign tok_pop   = (st == S_TOK && tok_ok && !halt) ? need : 4'b0;
    assign stall_tok = (st == S_TOK && !halt) ? (need & ~tok_nonzero) : 4'b0;
    assign e_valid   = st == S_ISSUE;
    assign e_instr   = ins;
    assign tok_push  = (st == S_RUN && e_done && !e_err && !halt) ? give : 4'b0;
    assign retire    = st == S_RUN && e_done && !e_err;
    assign idle      = st == S_IDLE;

    always_ff @(posedge clk) begin
        if (!rst_n || clr) begin
            st <= S_IDLE;
            ins <= '0;
            pc <= '0;
        end else begin
            unique case (st)
                S_IDLE: if (q_pop) begin ins <= q_instr; pc <= q_pc; st <= S_TOK; end
                S_TOK:  if (halt) st <= S_IDLE; else if (tok_ok) st <= S_ISSUE;
                // Once popped, the instruction is handed over even when halted:
                // the engine sees `halt` and finishes at once.
                S_ISSUE: if (e_ready) st <= S_RUN;
                S_RUN:  if (e_done) st <= S_IDLE;
            endcase
        end
    end
endmodule
