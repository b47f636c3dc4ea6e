// Performance counters of the register map (64-bit). All but FREE_CYCLES
// clear at the doorbell and count only while BUSY.
module npu_perf (
    input  logic        clk,
    input  logic        rst_n,
    input  logic        start,        // doorbell accepted
    input  logic        busy,
    input  logic        mac_active,
    input  logic [4:0]  rd_bytes,
    input  logic [4:0]  wr_bytes,
    input  logic [3:0]  stall_tok,    // l2c, c2l, c2s, s2c waits (npu_tokens order)
    input  logic        stall_dma,
    input  logic [2:0]  retired,      // instructions retired this cycle
    output logic [63:0] free_cycles,
    output logic [63:0] busy_cycles,
    output logic [63:0] mac_cycles,
    output logic [63:0] dma_rd,
    output logic [63:0] dma_wr,
    output logic [63:0] stall_l2c,
    output logic [63:0] stall_s2c,
    output logic [63:0] stall_c2l,
    output logic [63:0] stall_c2s,
    output logic [63:0] stall_dmac,
    output logic [63:0] instr_retired
);
    always_ff @(posedge clk) begin
        if (!rst_n) free_cycles <= '0;
        else free_cycles <= free_cycles + 64'd1;
    end

    always_ff @(posedge clk) begin
        if (!rst_n || start) begin
            busy_cycles <= '0; mac_cycles <= '0; dma_rd <= '0; dma_wr <= '0;
            stall_l2c <= '0; stall_s2c <= '0; stall_c2l <= '0; stall_c2s <= '0; stall_dmac <= '0;
            instr_retired <= '0;
        end else if (busy) begin
            busy_cycles   <= busy_cycles + 64'd1;
            mac_cycles    <= mac_cycles + 64'(mac_active);
            dma_rd        <= dma_rd + 64'(rd_bytes);
            dma_wr        <= dma_wr + 64'(wr_bytes);
            stall_l2c     <= stall_l2c + 64'(stall_tok[0]);
            stall_c2l     <= stall_c2l + 64'(stall_tok[1]);
            stall_c2s     <= stall_c2s + 64'(stall_tok[2]);
            stall_s2c     <= stall_s2c + 64'(stall_tok[3]);
            stall_dmac    <= stall_dmac + 64'(stall_dma);
            instr_retired <= instr_retired + 64'(retired);
        end
    end
endmodule
