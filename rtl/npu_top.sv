// presil NPU top level (docs/architecture.md): register block, command
// processor, load/store DMA engines, compute engine, token counters, SRAMs,
// AXI read arbiter and performance counters. One clock, synchronous
// active-low reset.
//
// ---------------------------------------------------------------------------
// Compute engine interface (module npu_compute, instantiated below)
//
//   npu_compute #(ROWS, COLS, ACT_DEPTH, WGT_DEPTH, PAR_DEPTH, ACC_DEPTH) (
//     input  clk, rst_n,
//     input  instr_valid,                 instruction handshake: instr is
//     output instr_ready,                 already checked by npu_decode (legal
//     input  [255:0] instr,               opcode, fields, SRAM ranges) and its
//                                         tokens are popped; taken when both high
//     output done,                        1-cycle pulse per accepted instruction,
//                                         after its last ACT/ACC write was granted
//     output err_valid, [7:0] err_code,   with done: a dynamic error (e.g.
//                                         BAD_FIELD for a PAR shift outside
//                                         [-31, 30]); the program stops
//     output act_rd_req,                  ACT read: address with req; granted
//     input  act_rd_gnt,                  in the same cycle (gnt is combina-
//     output [19:0] act_rd_addr,          tional: compute has priority over
//     input  [ROWS*8-1:0] act_rd_data,    STORE); data 1 cycle after the grant;
//                                         not granted -> retry next cycle
//     output act_wr_req,                  ACT write: written in the cycle of the
//     input  act_wr_gnt,                  grant (compute has priority over LOAD)
//     output [19:0] act_wr_addr,
//     output [ROWS*8-1:0] act_wr_data,
//     output wgt_rd_en, [19:0] wgt_rd_addr, input [COLS*8-1:0] wgt_rd_data
//                                         WGT read, private: data 1 cycle later
//     output par_rd_en, [19:0] par_rd_addr, input [COLS*32-1:0] par_rd_data
//                                         PAR read, private: data 1 cycle later
//     output mac_active);                 1 per cycle the array streams a valid pixel
//   ACC is private to the compute engine (instantiated inside). Addresses are
//   the ISA's 20-bit word addresses (npu_top uses the low $clog2(DEPTH) bits;
//   npu_decode has checked the ranges). On a program error the running
//   instruction completes normally (the engine makes no bus access). Byte k
//   of a word is bits [8k+7:8k] (channel k).
// ---------------------------------------------------------------------------
module npu_top
    import npu_isa_pkg::*;
#(
    parameter int unsigned ROWS       = DEFAULT_ROWS,
    parameter int unsigned COLS       = DEFAULT_COLS,
    parameter int unsigned ACT_DEPTH  = ACT_DEFAULT_DEPTH,
    parameter int unsigned WGT_DEPTH  = WGT_DEFAULT_DEPTH,
    parameter int unsigned PAR_DEPTH  = PAR_DEFAULT_DEPTH,
    parameter int unsigned ACC_DEPTH  = ACC_DEFAULT_DEPTH,
    parameter int unsigned CLOCK_HZ   = 200_000_000,
    parameter logic [31:0] BUILD_HASH = 32'h0,
    localparam int unsigned ACT_AW = $clog2(ACT_DEPTH),
    localparam int unsigned WGT_AW = $clog2(WGT_DEPTH),
    localparam int unsigned PAR_AW = $clog2(PAR_DEPTH)
) (
    input  logic         clk,
    input  logic         rst_n,
    // AXI4-Lite slave: registers
    input  logic         s_axil_awvalid,
    output logic         s_axil_awready,
    input  logic [11:0]  s_axil_awaddr,
    input  logic [2:0]   s_axil_awprot,
    input  logic         s_axil_wvalid,
    output logic         s_axil_wready,
    input  logic [31:0]  s_axil_wdata,
    input  logic [3:0]   s_axil_wstrb,
    output logic         s_axil_bvalid,
    input  logic         s_axil_bready,
    output logic [1:0]   s_axil_bresp,
    input  logic         s_axil_arvalid,
    output logic         s_axil_arready,
    input  logic [11:0]  s_axil_araddr,
    input  logic [2:0]   s_axil_arprot,
    output logic         s_axil_rvalid,
    input  logic         s_axil_rready,
    output logic [31:0]  s_axil_rdata,
    output logic [1:0]   s_axil_rresp,
    // AXI4 master: device memory (one ID, INCR, 16-byte beats)
    output logic         m_axi_awvalid,
    input  logic         m_axi_awready,
    output logic [31:0]  m_axi_awaddr,
    output logic [7:0]   m_axi_awlen,
    output logic [2:0]   m_axi_awsize,
    output logic [1:0]   m_axi_awburst,
    output logic         m_axi_wvalid,
    input  logic         m_axi_wready,
    output logic [127:0] m_axi_wdata,
    output logic [15:0]  m_axi_wstrb,
    output logic         m_axi_wlast,
    input  logic         m_axi_bvalid,
    output logic         m_axi_bready,
    input  logic [1:0]   m_axi_bresp,
    output logic         m_axi_arvalid,
    input  logic         m_axi_arready,
    output logic [31:0]  m_axi_araddr,
    output logic [7:0]   m_axi_arlen,
    output logic [2:0]   m_axi_arsize,
    output logic [1:0]   m_axi_arburst,
    input  logic         m_axi_rvalid,
    output logic         m_axi_rready,
    input  logic [127:0] m_axi_rdata,
    input  logic [1:0]   m_axi_rresp,
    input  logic         m_axi_rlast,
    output logic         irq
);
    // ------------------------------------------------------------ registers
    npu_regs_pkg::npu_regs__in_t  hwif_in;
    npu_regs_pkg::npu_regs__out_t hwif_out;

    npu_regs u_regs (
        .clk, .rst(!rst_n),
        .s_axil_awready, .s_axil_awvalid, .s_axil_awaddr, .s_axil_awprot,
        .s_axil_wready, .s_axil_wvalid, .s_axil_wdata, .s_axil_wstrb,
        .s_axil_bready, .s_axil_bvalid, .s_axil_bresp,
        .s_axil_arready, .s_axil_arvalid, .s_axil_araddr, .s_axil_arprot,
        .s_axil_rready, .s_axil_rvalid, .s_axil_rdata, .s_axil_rresp,
        .hwif_in, .hwif_out);

    logic [31:0] win_base, win_limit;
    assign win_base  = hwif_out.DMA_WIN_BASE.value.value;
    assign win_limit = hwif_out.DMA_WIN_LIMIT.value.value;
    assign irq = (hwif_out.IRQ_STATUS.DONE.value && hwif_out.IRQ_ENABLE.DONE.value)
              || (hwif_out.IRQ_STATUS.ERROR.value && hwif_out.IRQ_ENABLE.ERROR.value);

    // ------------------------------------------------------------ command processor
    logic busy, done, error, irq_done, irq_error, start, sclr, halt;
    logic [7:0] err_code;
    logic [31:0] err_pc, err_addr, status_pc;
    logic f_ar_valid, f_ar_ready, f_r_valid, f_r_ready;
    logic [31:0] f_ar_addr;
    logic [7:0]  f_ar_len;
    logic [2:0]  q_valid, q_pop;
    logic [INSTR_BITS-1:0] q_instr [3];
    logic [31:0] q_pc [3];
    logic engines_idle, quiet, tok_any, eng_err, disp_retired;
    logic [7:0] eng_err_code;
    logic [31:0] eng_err_pc, eng_err_addr;
    logic [1:0] eng_retired;

    npu_cmd #(.ROWS(ROWS), .COLS(COLS), .ACT_DEPTH(ACT_DEPTH), .WGT_DEPTH(WGT_DEPTH),
              .PAR_DEPTH(PAR_DEPTH), .ACC_DEPTH(ACC_DEPTH)) u_cmd (
        .clk, .rst_n,
        .cmd_base(hwif_out.CMD_BASE.value.value), .cmd_len(hwif_out.CMD_LEN.value.value),
        .watchdog(hwif_out.WATCHDOG.value.value), .doorbell(hwif_out.DOORBELL.value.swmod),
        .abort(hwif_out.CTRL.ABORT.value), .soft_reset(hwif_out.CTRL.SOFT_RESET.value),
        .busy, .done, .error, .err_code, .err_pc, .err_addr, .status_pc, .irq_done, .irq_error,
        .start, .sclr, .halt,
        .ar_valid(f_ar_valid), .ar_ready(f_ar_ready), .ar_addr(f_ar_addr), .ar_len(f_ar_len),
        .r_valid(f_r_valid), .r_ready(f_r_ready), .r_data(m_axi_rdata), .r_resp(m_axi_rresp),
        .q_valid, .q_pop, .q_instr, .q_pc,
        .engines_idle, .quiet, .tok_any, .eng_err, .eng_err_code, .eng_err_pc, .eng_err_addr,
        .eng_retired, .disp_retired);

    // ------------------------------------------------------------ tokens
    // Counter order: 0 l2c, 1 c2l, 2 c2s, 3 s2c.
    logic [3:0] tok_nz, tok_ovf;
    logic [3:0] pop_l, pop_c, pop_s, push_l, push_c, push_s;
    logic [3:0] stall_l, stall_c, stall_s;
    npu_tokens u_tok (.clk, .rst_n, .clr(sclr || start), .pop(pop_l | pop_c | pop_s),
                      .push(push_l | push_c | push_s), .nonzero(tok_nz), .ovf(tok_ovf));
    assign tok_any = |tok_nz;

    // gates: engine instruction handshakes
    logic [2:0] g_idle, g_retire, e_valid, e_ready, e_done, e_err;
    logic [INSTR_BITS-1:0] e_instr [3];
    logic [31:0] g_pc [3];

    npu_token_gate #(.POP_NEXT_CTR(4'b0010), .PUSH_NEXT_CTR(4'b0001)) u_gate_load (
        .clk, .rst_n, .clr(sclr), .halt, .q_valid(q_valid[0]), .q_instr(q_instr[0]), .q_pc(q_pc[0]),
        .q_pop(q_pop[0]), .tok_nonzero(tok_nz), .tok_pop(pop_l), .tok_push(push_l),
        .e_valid(e_valid[0]), .e_ready(e_ready[0]), .e_instr(e_instr[0]), .e_done(e_done[0]), .e_err(e_err[0]),
        .idle(g_idle[0]), .pc(g_pc[0]), .retire(g_retire[0]), .stall_tok(stall_l));
    npu_token_gate #(.POP_PREV_CTR(4'b0001), .POP_NEXT_CTR(4'b1000),
                     .PUSH_PREV_CTR(4'b0010), .PUSH_NEXT_CTR(4'b0100)) u_gate_comp (
        .clk, .rst_n, .clr(sclr), .halt, .q_valid(q_valid[1]), .q_instr(q_instr[1]), .q_pc(q_pc[1]),
        .q_pop(q_pop[1]), .tok_nonzero(tok_nz), .tok_pop(pop_c), .tok_push(push_c),
        .e_valid(e_valid[1]), .e_ready(e_ready[1]), .e_instr(e_instr[1]), .e_done(e_done[1]), .e_err(e_err[1]),
        .idle(g_idle[1]), .pc(g_pc[1]), .retire(g_retire[1]), .stall_tok(stall_c));
    npu_token_gate #(.POP_PREV_CTR(4'b0100), .PUSH_PREV_CTR(4'b1000)) u_gate_store (
        .clk, .rst_n, .clr(sclr), .halt, .q_valid(q_valid[2]), .q_instr(q_instr[2]), .q_pc(q_pc[2]),
        .q_pop(q_pop[2]), .tok_nonzero(tok_nz), .tok_pop(pop_s), .tok_push(push_s),
        .e_valid(e_valid[2]), .e_ready(e_ready[2]), .e_instr(e_instr[2]), .e_done(e_done[2]), .e_err(e_err[2]),
        .idle(g_idle[2]), .pc(g_pc[2]), .retire(g_retire[2]), .stall_tok(stall_s));

    assign engines_idle = &g_idle;
    assign eng_retired = 2'(g_retire[0]) + 2'(g_retire[1]) + 2'(g_retire[2]);

    // ------------------------------------------------------------ engines
    logic [7:0]  l_code, s_code, c_code;
    logic [31:0] l_addr, s_addr;
    logic        l_busy, s_busy, c_busy, mac_active, l_stall, s_stall;
    logic [4:0]  l_bytes, s_bytes;
    logic        l_ar_valid, l_ar_ready, l_r_valid, l_r_ready;
    logic [31:0] l_ar_addr;
    logic [7:0]  l_ar_len;

    // SRAM ports
    logic              la_req, la_gnt, ca_wreq, ca_wgnt, ca_rreq, ca_rgnt, sa_req, sa_gnt;
    logic [ACT_AW-1:0] la_addr, sa_addr;
    logic [19:0]       ca_waddr, ca_raddr, wgt_raddr, par_raddr;
    logic [ROWS*8-1:0] la_wdata, ca_wdata, act_rdata;
    logic              wgt_we, wgt_re, par_we, par_re;
    logic [WGT_AW-1:0] wgt_waddr;
    logic [PAR_AW-1:0] par_waddr;
    logic [COLS*8-1:0]  wgt_wdata, wgt_rdata;
    logic [COLS*32-1:0] par_wdata, par_rdata;

    npu_dma_load #(.ROWS(ROWS), .COLS(COLS), .ACT_DEPTH(ACT_DEPTH), .WGT_DEPTH(WGT_DEPTH),
                   .PAR_DEPTH(PAR_DEPTH)) u_load (
        .clk, .rst_n, .clr(sclr), .halt,
        .i_valid(e_valid[0]), .i_ready(e_ready[0]), .i_instr(e_instr[0]),
        .done(e_done[0]), .err(e_err[0]), .err_code(l_code), .err_addr(l_addr),
        .win_base, .win_limit,
        .ar_valid(l_ar_valid), .ar_ready(l_ar_ready), .ar_addr(l_ar_addr), .ar_len(l_ar_len),
        .r_valid(l_r_valid), .r_ready(l_r_ready), .r_data(m_axi_rdata), .r_resp(m_axi_rresp), .r_last(m_axi_rlast),
        .act_req(la_req), .act_gnt(la_gnt), .act_addr(la_addr), .act_wdata(la_wdata),
        .wgt_we, .wgt_addr(wgt_waddr), .wgt_wdata, .par_we, .par_addr(par_waddr), .par_wdata,
        .busy(l_busy), .bytes(l_bytes), .stall(l_stall));

    npu_dma_store #(.ROWS(ROWS), .ACT_DEPTH(ACT_DEPTH)) u_store (
        .clk, .rst_n, .clr(sclr), .halt,
        .i_valid(e_valid[2]), .i_ready(e_ready[2]), .i_instr(e_instr[2]),
        .done(e_done[2]), .err(e_err[2]), .err_code(s_code), .err_addr(s_addr),
        .win_base, .win_limit,
        .aw_valid(m_axi_awvalid), .aw_ready(m_axi_awready), .aw_addr(m_axi_awaddr), .aw_len(m_axi_awlen),
        .w_valid(m_axi_wvalid), .w_ready(m_axi_wready), .w_data(m_axi_wdata), .w_strb(m_axi_wstrb),
        .w_last(m_axi_wlast), .b_valid(m_axi_bvalid), .b_ready(m_axi_bready), .b_resp(m_axi_bresp),
        .act_req(sa_req), .act_gnt(sa_gnt), .act_addr(sa_addr), .act_rdata(act_rdata),
        .busy(s_busy), .bytes(s_bytes), .stall(s_stall));

    logic c_err_valid;
    npu_compute #(.ROWS(ROWS), .COLS(COLS), .ACT_DEPTH(ACT_DEPTH), .WGT_DEPTH(WGT_DEPTH),
                  .PAR_DEPTH(PAR_DEPTH), .ACC_DEPTH(ACC_DEPTH)) u_compute (
        .clk, .rst_n(rst_n && !sclr),
        .instr_valid(e_valid[1]), .instr_ready(e_ready[1]), .instr(e_instr[1]),
        .done(e_done[1]), .err_valid(c_err_valid), .err_code(c_code),
        .act_rd_req(ca_rreq), .act_rd_gnt(ca_rgnt), .act_rd_addr(ca_raddr), .act_rd_data(act_rdata),
        .act_wr_req(ca_wreq), .act_wr_gnt(ca_wgnt), .act_wr_addr(ca_waddr), .act_wr_data(ca_wdata),
        .wgt_rd_en(wgt_re), .wgt_rd_addr(wgt_raddr), .wgt_rd_data(wgt_rdata),
        .par_rd_en(par_re), .par_rd_addr(par_raddr), .par_rd_data(par_rdata),
        .mac_active);
    assign c_busy = !g_idle[1];
    assign e_err[1] = e_done[1] && c_err_valid;

    // ------------------------------------------------------------ SRAMs
    // ACT: fixed priority, compute first on both ports (the array is the
    // expensive resource; a DMA engine that loses waits, counted as STALL_DMA).
    assign ca_wgnt = ca_wreq;
    assign la_gnt  = la_req && !ca_wreq;
    assign ca_rgnt = ca_rreq;
    assign sa_gnt  = sa_req && !ca_rreq;

    npu_sram #(.W(ROWS * 8), .DEPTH(ACT_DEPTH)) u_act (
        .clk, .we(ca_wgnt || la_gnt), .waddr(ca_wgnt ? ACT_AW'(ca_waddr) : la_addr), .wdata(ca_wgnt ? ca_wdata : la_wdata),
        .re(ca_rgnt || sa_gnt), .raddr(ca_rgnt ? ACT_AW'(ca_raddr) : sa_addr), .rdata(act_rdata));
    npu_sram #(.W(COLS * 8), .DEPTH(WGT_DEPTH)) u_wgt (
        .clk, .we(wgt_we), .waddr(wgt_waddr), .wdata(wgt_wdata), .re(wgt_re), .raddr(WGT_AW'(wgt_raddr)), .rdata(wgt_rdata));
    npu_sram #(.W(COLS * 32), .DEPTH(PAR_DEPTH)) u_par (
        .clk, .we(par_we), .waddr(par_waddr), .wdata(par_wdata), .re(par_re), .raddr(PAR_AW'(par_raddr)), .rdata(par_rdata));

    // ------------------------------------------------------------ AXI read arbiter
    logic arb_idle;
    logic [31:0] arb_addr [2];
    logic [7:0]  arb_len [2];
    logic [1:0]  arb_ar_ready, arb_r_valid;
    assign arb_addr = '{f_ar_addr, l_ar_addr};
    assign arb_len  = '{f_ar_len, l_ar_len};
    npu_axi_arb u_arb (
        .clk, .rst_n,
        .s_ar_valid({l_ar_valid, f_ar_valid}), .s_ar_ready(arb_ar_ready), .s_ar_addr(arb_addr), .s_ar_len(arb_len),
        .s_r_valid(arb_r_valid), .s_r_ready({l_r_ready, f_r_ready}),
        .m_ar_valid(m_axi_arvalid), .m_ar_ready(m_axi_arready), .m_ar_addr(m_axi_araddr), .m_ar_len(m_axi_arlen),
        .m_r_valid(m_axi_rvalid), .m_r_ready(m_axi_rready), .m_r_last(m_axi_rlast), .idle(arb_idle));
    assign {l_ar_ready, f_ar_ready} = arb_ar_ready;
    assign {l_r_valid, f_r_valid} = arb_r_valid;
    assign m_axi_arsize = 3'b100;    // 16 bytes per beat
    assign m_axi_arburst = 2'b01;    // INCR
    assign m_axi_awsize = 3'b100;
    assign m_axi_awburst = 2'b01;
    // Engines finish their own bursts before going idle; the fetcher's are
    // the arbiter's.
    assign quiet = arb_idle;

    // ------------------------------------------------------------ errors of engines and tokens
    // First by fixed priority when several fail in the same cycle.
    always_comb begin
        eng_err = 1'b1; eng_err_code = npu_regmap_pkg::ERR_CODE_NONE; eng_err_pc = '0; eng_err_addr = '0;
        if (e_err[0])        begin eng_err_code = l_code; eng_err_pc = g_pc[0]; eng_err_addr = l_addr; end
        else if (e_err[2])   begin eng_err_code = s_code; eng_err_pc = g_pc[2]; eng_err_addr = s_addr; end
        else if (e_err[1])   begin eng_err_code = c_code; eng_err_pc = g_pc[1]; end
        else if (tok_ovf[0]) begin eng_err_code = npu_regmap_pkg::ERR_CODE_TOKEN_OVERFLOW; eng_err_pc = g_pc[0]; end
        else if (tok_ovf[3]) begin eng_err_code = npu_regmap_pkg::ERR_CODE_TOKEN_OVERFLOW; eng_err_pc = g_pc[2]; end
        else if (|tok_ovf[2:1]) begin eng_err_code = npu_regmap_pkg::ERR_CODE_TOKEN_OVERFLOW; eng_err_pc = g_pc[1]; end
        else eng_err = 1'b0;
    end

    // ------------------------------------------------------------ perf counters
    logic [63:0] pf_free, pf_busy, pf_mac, pf_rd, pf_wr, pf_l2c, pf_s2c, pf_c2l, pf_c2s, pf_dma, pf_ret;
    npu_perf u_perf (
        .clk, .rst_n, .start, .busy, .mac_active, .rd_bytes(l_bytes), .wr_bytes(s_bytes),
        .stall_tok({stall_c[3], stall_s[2], stall_l[1], stall_c[0]}),
        .stall_dma(l_stall || s_stall),
        .retired(3'(eng_retired) + 3'(disp_retired)),
        .free_cycles(pf_free), .busy_cycles(pf_busy), .mac_cycles(pf_mac), .dma_rd(pf_rd), .dma_wr(pf_wr),
        .stall_l2c(pf_l2c), .stall_s2c(pf_s2c), .stall_c2l(pf_c2l), .stall_c2s(pf_c2s),
        .stall_dmac(pf_dma), .instr_retired(pf_ret));

    // ------------------------------------------------------------ register inputs
    always_comb begin
        hwif_in.ISA_HASH.value.next = ISA_HASH;
        hwif_in.REGMAP_HASH.value.next = npu_regmap_pkg::REGMAP_HASH;
        hwif_in.BUILD_HASH.value.next = BUILD_HASH;
        hwif_in.HW_ARRAY.rows.next = 16'(ROWS);
        hwif_in.HW_ARRAY.cols.next = 16'(COLS);
        hwif_in.HW_ACT_DEPTH.value.next = 32'(ACT_DEPTH);
        hwif_in.HW_WGT_DEPTH.value.next = 32'(WGT_DEPTH);
        hwif_in.HW_ACC_DEPTH.value.next = 32'(ACC_DEPTH);
        hwif_in.HW_PAR_DEPTH.value.next = 32'(PAR_DEPTH);
        hwif_in.HW_CLOCK_HZ.value.next = 32'(CLOCK_HZ);
        hwif_in.STATUS.BUSY.next = busy;
        hwif_in.STATUS.DONE.next = done;
        hwif_in.STATUS.ERROR.next = error;
        hwif_in.STATUS.LOAD_BUSY.next = l_busy || !g_idle[0];
        hwif_in.STATUS.COMPUTE_BUSY.next = c_busy || !g_idle[1];
        hwif_in.STATUS.STORE_BUSY.next = s_busy || !g_idle[2];
        hwif_in.STATUS_PC.value.next = status_pc;
        hwif_in.IRQ_STATUS.DONE.hwset = irq_done;
        hwif_in.IRQ_STATUS.ERROR.hwset = irq_error;
        hwif_in.IRQ_STATUS.DONE.hwclr = sclr;    // CTRL.SOFT_RESET clears IRQ_STATUS (npu_regs.rdl)
        hwif_in.IRQ_STATUS.ERROR.hwclr = sclr;
        hwif_in.ERR_CODE.code.next = err_code;
        hwif_in.ERR_ADDR.value.next = err_addr;
        hwif_in.ERR_PC.value.next = err_pc;
        hwif_in.PERF_FREE_CYCLES_LO.value.next = pf_free[31:0];
        hwif_in.PERF_FREE_CYCLES_HI.value.next = pf_free[63:32];
        hwif_in.PERF_BUSY_CYCLES_LO.value.next = pf_busy[31:0];
        hwif_in.PERF_BUSY_CYCLES_HI.value.next = pf_busy[63:32];
        hwif_in.PERF_MAC_ACTIVE_CYCLES_LO.value.next = pf_mac[31:0];
        hwif_in.PERF_MAC_ACTIVE_CYCLES_HI.value.next = pf_mac[63:32];
        hwif_in.PERF_DMA_RD_BYTES_LO.value.next = pf_rd[31:0];
        hwif_in.PERF_DMA_RD_BYTES_HI.value.next = pf_rd[63:32];
        hwif_in.PERF_DMA_WR_BYTES_LO.value.next = pf_wr[31:0];
        hwif_in.PERF_DMA_WR_BYTES_HI.value.next = pf_wr[63:32];
        hwif_in.PERF_STALL_L2C_LO.value.next = pf_l2c[31:0];
        hwif_in.PERF_STALL_L2C_HI.value.next = pf_l2c[63:32];
        hwif_in.PERF_STALL_S2C_LO.value.next = pf_s2c[31:0];
        hwif_in.PERF_STALL_S2C_HI.value.next = pf_s2c[63:32];
        hwif_in.PERF_STALL_C2L_LO.value.next = pf_c2l[31:0];
        hwif_in.PERF_STALL_C2L_HI.value.next = pf_c2l[63:32];
        hwif_in.PERF_STALL_C2S_LO.value.next = pf_c2s[31:0];
        hwif_in.PERF_STALL_C2S_HI.value.next = pf_c2s[63:32];
        hwif_in.PERF_STALL_DMA_LO.value.next = pf_dma[31:0];
        hwif_in.PERF_STALL_DMA_HI.value.next = pf_dma[63:32];
        hwif_in.PERF_INSTR_RETIRED_LO.value.next = pf_ret[31:0];
        hwif_in.PERF_INSTR_RETIRED_HI.value.next = pf_ret[63:32];
    end

    // High address bits beyond the depth (npu_decode has checked the ranges) and
    // stall bits a gate can never raise (no such stage).
    logic unused;
    assign unused = ^{ca_waddr, ca_raddr, wgt_raddr, par_raddr, stall_l[3:2], stall_l[0], stall_c[2:1], stall_s[3], stall_s[1:0]};
endmodule
