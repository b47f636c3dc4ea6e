// compute_tb_top: block testbench top for npu_compute (simulation only).
//
// Backdoor memories, loaded by $readmemh when `load` is pulsed:
//   compute_act.hex (ACT, ROWS*8 bits/word), compute_wgt.hex (WGT),
//   compute_par.hex (PAR), compute_instr.hex (256-bit instructions).
// An instruction player feeds n_stim instructions to the DUT one at a time
// (the next after the previous one's done) and records, per instruction,
// {err_valid, err_code[7:0], mac_active cycles[31:0], cycles accept->done[31:0]}
// in compute_res.hex. When all are done it writes compute_act_out.hex (ACT)
// and compute_acc_out.hex (the DUT's private ACC, by hierarchical reference)
// and raises `done`; n_out = instructions completed, cycles = total cycles,
// latency = total mac_active cycles.
//
// n_rep selects the arbitration stress: bit 0 randomly withholds the ACT read
// grant, bit 1 the ACT write grant (LFSR, about 1 cycle in 3 granted), so
// every requester must hold its request until granted.
module compute_tb_top #(
    parameter  int ROWS      = 16,
    parameter  int COLS      = 16,
    parameter  int ACT_DEPTH = 4096,
    parameter  int WGT_DEPTH = 4096,
    parameter  int PAR_DEPTH = 256,
    parameter  int ACC_DEPTH = 1024,
    parameter  int MAX_INSTR = 256,
    localparam int ACT_AW = $clog2(ACT_DEPTH),
    localparam int WGT_AW = $clog2(WGT_DEPTH),
    localparam int PAR_AW = $clog2(PAR_DEPTH),
    localparam int IW     = $clog2(MAX_INSTR)
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
    logic [ROWS*8-1:0]  act_mem   [ACT_DEPTH];
    logic [COLS*8-1:0]  wgt_mem   [WGT_DEPTH];
    logic [COLS*32-1:0] par_mem   [PAR_DEPTH];
    logic [255:0]       instr_mem [MAX_INSTR];
    logic [72:0]        res_mem   [MAX_INSTR];

    always @(posedge clk) begin
        if (load) begin
            $readmemh("compute_act.hex", act_mem);
            $readmemh("compute_wgt.hex", wgt_mem);
            $readmemh("compute_par.hex", par_mem);
            $readmemh("compute_instr.hex", instr_mem);
        end
    end

    // ---- DUT ---------------------------------------------------------------------------
    logic               instr_valid, instr_ready, dut_done, err_valid, mac_active;
    logic [7:0]         err_code;
    logic [255:0]       instr;
    logic               act_rd_req, act_rd_gnt, act_wr_req, act_wr_gnt, wgt_rd_en, par_rd_en;
    logic [19:0]        act_rd_addr, act_wr_addr, wgt_rd_addr, par_rd_addr;
    logic [ROWS*8-1:0]  act_rd_data, act_wr_data;
    logic [COLS*8-1:0]  wgt_rd_data;
    logic [COLS*32-1:0] par_rd_data;

    npu_compute #(.ROWS(ROWS), .COLS(COLS), .ACT_DEPTH(ACT_DEPTH), .WGT_DEPTH(WGT_DEPTH),
                  .PAR_DEPTH(PAR_DEPTH), .ACC_DEPTH(ACC_DEPTH)) u_dut (
        .clk, .rst_n, .instr_valid, .instr_ready, .instr, .done (dut_done), .err_valid, .err_code,
        .act_rd_req, .act_rd_gnt, .act_rd_addr, .act_rd_data,
        .act_wr_req, .act_wr_gnt, .act_wr_addr, .act_wr_data,
        .wgt_rd_en, .wgt_rd_addr, .wgt_rd_data,
        .par_rd_en, .par_rd_addr, .par_rd_data,
        .mac_active
    );

    // ---- memories with arbitration stress ----------------------------------------------
    logic [15:0] lfsr;
    always_ff @(posedge clk) begin
        if (!rst_n) lfsr <= 16'hace1;
        else        lfsr <= {lfsr[14:0], lfsr[15] ^ lfsr[13] ^ lfsr[12] ^ lfsr[10]};
    end
    assign act_rd_gnt = act_rd_req && (!n_rep[0] || (lfsr[1:0] == 2'b00) || lfsr[7]);
    assign act_wr_gnt = act_wr_req && (!n_rep[1] || (lfsr[3:2] == 2'b00) || lfsr[9]);
    // An access beyond a memory reads all-ones (and is not written): a wrong
    // address shows up as a mismatch instead of aliasing.
    always @(posedge clk) begin
        if (act_rd_gnt) act_rd_data <= (act_rd_addr < 20'(ACT_DEPTH)) ? act_mem[ACT_AW'(act_rd_addr)] : '1;
        if (act_wr_gnt && act_wr_addr < 20'(ACT_DEPTH)) act_mem[ACT_AW'(act_wr_addr)] <= act_wr_data;
        if (wgt_rd_en)  wgt_rd_data <= (wgt_rd_addr < 20'(WGT_DEPTH)) ? wgt_mem[WGT_AW'(wgt_rd_addr)] : '1;
        if (par_rd_en)  par_rd_data <= (par_rd_addr < 20'(PAR_DEPTH)) ? par_mem[PAR_AW'(par_rd_addr)] : '1;
    end

    // ---- instruction player ------------------------------------------------------------------
    logic        playing, waiting, finishing;
    logic [31:0] pc, t_instr, mac_instr;
    assign instr = instr_mem[IW'(pc)];
    assign instr_valid = playing && !waiting;

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            playing <= 1'b0; waiting <= 1'b0; finishing <= 1'b0; done <= 1'b0;
            pc <= '0; n_out <= '0; cycles <= '0; latency <= '0; t_instr <= '0; mac_instr <= '0;
        end else begin
            finishing <= 1'b0;
            if (start) begin
                playing <= (n_stim != 0); finishing <= (n_stim == 0); waiting <= 1'b0; done <= 1'b0;
                pc <= '0; n_out <= '0; cycles <= '0; latency <= '0;
            end else if (playing) begin
                cycles <= cycles + 64'd1;
                t_instr <= t_instr + 32'd1;
                if (mac_active) begin
                    mac_instr <= mac_instr + 32'd1;
                    latency   <= latency + 32'd1;
                end
                if (instr_valid && instr_ready) begin
                    waiting <= 1'b1; t_instr <= 32'd1; mac_instr <= '0;
                end
                if (dut_done) begin
                    res_mem[IW'(pc)] <= {err_valid, err_code, mac_instr + 32'(mac_active), t_instr + 32'd1};
                    waiting <= 1'b0;
                    pc <= pc + 32'd1;
                    n_out <= n_out + 32'd1;
                    if (pc == n_stim - 1) begin
                        playing <= 1'b0; finishing <= 1'b1;
                    end
                end
            end
            if (finishing) done <= 1'b1;
        end
    end

    // Results are written once, after the last instruction (ACT writes are done by then).
    always @(posedge clk) begin
        if (finishing) begin
            if (n_out != 0) $writememh("compute_res.hex", res_mem, 0, int'(n_out) - 1);
            $writememh("compute_act_out.hex", act_mem);
            $writememh("compute_acc_out.hex", u_dut.u_acc.mem);
        end
    end
endmodule
