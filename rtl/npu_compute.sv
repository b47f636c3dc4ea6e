// npu_compute: the compute engine. Executes GEMM, POST, ADD and POOL one at a
// time, bit-exactly as golden/iss.py does (golden/isa.toml is the contract).
//
//   npu_gemm_ctrl  GEMM: im2col streamer, weight loader, array, ACC read-modify-write
//   npu_postadd    POST (ACC -> requant -> ACT) and ADD (ACT, ACT -> MBQM -> requant -> ACT)
//   npu_pool       POOL (max / average)
//   npu_wr_queue   ACT write queue in front of the arbitrated ACT write port
//   npu_sram       ACC, private to this engine
//
// Handshake: an instruction is taken when instr_valid && instr_ready (ready
// only while idle); `done` pulses once all of its writes have reached ACC/ACT
// (for POST/ADD/POOL: granted on the ACT write port); err_valid/err_code come
// with done (POST: a PAR multiplier or shift out of range is BAD_FIELD, and
// nothing is written). Only one sub-engine is active at a time, so the shared
// ports are multiplexed by the current opcode.
module npu_compute
    import npu_isa_pkg::*;
#(
    parameter int ROWS = 16, COLS = 16, ACT_DEPTH = 16384, WGT_DEPTH = 8192, PAR_DEPTH = 1536, ACC_DEPTH = 4096
) (
    input  logic                 clk,
    input  logic                 rst_n,
    input  logic                 instr_valid,
    output logic                 instr_ready,
    input  logic [255:0]         instr,
    output logic                 done,
    output logic                 err_valid,
    output logic [7:0]           err_code,
    output logic                 act_rd_req,
    input  logic                 act_rd_gnt,
    output logic [19:0]          act_rd_addr,
    input  logic [ROWS*8-1:0]    act_rd_data,
    output logic                 act_wr_req,
    input  logic                 act_wr_gnt,
    output logic [19:0]          act_wr_addr,
    output logic [ROWS*8-1:0]    act_wr_data,
    output logic                 wgt_rd_en,
    output logic [19:0]          wgt_rd_addr,
    input  logic [COLS*8-1:0]    wgt_rd_data,
    output logic                 par_rd_en,
    output logic [19:0]          par_rd_addr,
    input  logic [COLS*32-1:0]   par_rd_data,
    output logic                 mac_active
);
    localparam int ACC_AW   = (ACC_DEPTH > 1) ? $clog2(ACC_DEPTH) : 1;
    localparam int WQ_DEPTH = 16;                 // > requant + MBQM latency: full rate with credits
    localparam int WQ_W     = $clog2(WQ_DEPTH + 1);


    // ---- instruction register and sequencing ------------------------------------
    typedef enum logic [1:0] {C_IDLE, C_START, C_WAIT} cstate_t;
    cstate_t      cs;
    logic [255:0] ir;
    logic [7:0]   op;
    logic         is_gemm, is_pa, is_pool;
    logic         gemm_busy, pa_busy, pa_err, pool_busy, wq_empty;

    assign op      = ir[OPCODE_LSB +: OPCODE_W];
    assign is_gemm = (op == OP_GEMM);
    assign is_pa   = (op == OP_POST) || (op == OP_ADD);
    assign is_pool = (op == OP_POOL);
    assign instr_ready = (cs == C_IDLE);

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            cs <= C_IDLE;
        end else begin
            case (cs)
                C_IDLE:  if (instr_valid) cs <= C_START;
                C_START: cs <= C_WAIT;
                C_WAIT:  if (done) cs <= C_IDLE;
                default: cs <= C_IDLE;
            endcase
        end
    end
    always_ff @(posedge clk) begin
        if (instr_ready && instr_valid) ir <= instr;
    end

    // Engines register their start, so they are busy from the first C_WAIT cycle.
    assign done      = (cs == C_WAIT) && !gemm_busy && !pa_busy && !pool_busy && wq_empty;
    assign err_valid = done && (op == OP_POST) && pa_err;
    assign err_code  = err_valid ? 8'(npu_regmap_pkg::ERR_CODE_BAD_FIELD) : 8'd0;

    // ---- ACC ---------------------------------------------------------------------------
    logic                g_acc_rd_en, g_acc_wr_en, p_acc_rd_en, acc_rd_en;
    logic [ACC_AW-1:0]   g_acc_rd_addr, g_acc_wr_addr, p_acc_rd_addr, acc_rd_addr;
    logic [COLS*32-1:0]  g_acc_wr_data, acc_rd_data;
    assign acc_rd_en   = is_gemm ? g_acc_rd_en : p_acc_rd_en;
    assign acc_rd_addr = is_gemm ? g_acc_rd_addr : p_acc_rd_addr;
    // A read of the word being written in the same cycle returns the old
    // contents: npu_gemm_ctrl forwards around that.
    npu_sram #(.W(COLS*32), .DEPTH(ACC_DEPTH)) u_acc (
        .clk,
        .we (g_acc_wr_en), .waddr (g_acc_wr_addr), .wdata (g_acc_wr_data),
        .re (acc_rd_en), .raddr (acc_rd_addr), .rdata (acc_rd_data)
    );

    // ---- ACT read port: owned by the running sub-engine ---------------------------------
    logic        g_act_req, p_act_req, o_act_req;
    logic [19:0] g_act_addr, p_act_addr, o_act_addr;
    assign act_rd_req  = is_gemm ? g_act_req  : is_pa ? p_act_req  : is_pool && o_act_req;
    assign act_rd_addr = is_gemm ? g_act_addr : is_pa ? p_act_addr : o_act_addr;

    // ---- ACT write queue ---------------------------------------------------------------------
    logic              p_push, o_push;
    logic [19:0]       p_waddr, o_waddr;
    logic [ROWS*8-1:0] p_wdata, o_wdata;
    logic [WQ_W-1:0]   wq_free;
    npu_wr_queue #(.DW(ROWS*8), .DEPTH(WQ_DEPTH)) u_wq (
        .clk, .rst_n,
        .push      (p_push || o_push),
        .push_addr (p_push ? p_waddr : o_waddr),
        .push_data (p_push ? p_wdata : o_wdata),
        .free      (wq_free),
        .empty     (wq_empty),
        .wr_req    (act_wr_req),
        .wr_gnt    (act_wr_gnt),
        .wr_addr   (act_wr_addr),
        .wr_data   (act_wr_data)
    );

    // ---- sub-engines -----------------------------------------------------------------------------
    logic start;
    assign start = (cs == C_START);

    npu_gemm_ctrl #(.ROWS(ROWS), .COLS(COLS), .ACC_AW(ACC_AW)) u_gemm (
        .clk, .rst_n,
        .start       (start && is_gemm),
        .instr       (ir),
        .busy        (gemm_busy),
        .act_rd_req  (g_act_req),
        .act_rd_gnt  (act_rd_gnt && is_gemm),
        .act_rd_addr (g_act_addr),
        .act_rd_data (act_rd_data),
        .wgt_rd_en, .wgt_rd_addr, .wgt_rd_data,
        .acc_rd_en   (g_acc_rd_en),
        .acc_rd_addr (g_acc_rd_addr),
        .acc_rd_data (acc_rd_data),
        .acc_wr_en   (g_acc_wr_en),
        .acc_wr_addr (g_acc_wr_addr),
        .acc_wr_data (g_acc_wr_data),
        .mac_active
    );

    npu_postadd #(.ROWS(ROWS), .COLS(COLS), .ACC_AW(ACC_AW), .WQ_W(WQ_W)) u_postadd (
        .clk, .rst_n,
        .start       (start && is_pa),
        .instr       (ir),
        .busy        (pa_busy),
        .err         (pa_err),
        .acc_rd_en   (p_acc_rd_en),
        .acc_rd_addr (p_acc_rd_addr),
        .acc_rd_data (acc_rd_data),
        .par_rd_en, .par_rd_addr, .par_rd_data,
        .act_rd_req  (p_act_req),
        .act_rd_gnt  (act_rd_gnt && is_pa),
        .act_rd_addr (p_act_addr),
        .act_rd_data (act_rd_data),
        .wq_free     (wq_free),
        .wq_push     (p_push),
        .wq_addr     (p_waddr),
        .wq_data     (p_wdata)
    );

    npu_pool #(.ROWS(ROWS), .WQ_W(WQ_W)) u_pool (
        .clk, .rst_n,
        .start       (start && is_pool),
        .instr       (ir),
        .busy        (pool_busy),
        .act_rd_req  (o_act_req),
        .act_rd_gnt  (act_rd_gnt && is_pool),
        .act_rd_addr (o_act_addr),
        .act_rd_data (act_rd_data),
        .wq_free     (wq_free),
        .wq_push     (o_push),
        .wq_addr     (o_waddr),
        .wq_data     (o_wdata)
    );
endmodule
