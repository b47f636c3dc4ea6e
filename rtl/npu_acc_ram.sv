// npu_acc_ram: the compute engine's private ACC memory: one write port, one
// read port, synchronous read (data one cycle after rd_en). A read of the word
// being written in the same cycle returns the old contents (callers forward).
// Contents are not reset (docs/architecture.md §1).
module npu_acc_ram #(
    parameter  int W     = 512,
    parameter  int DEPTH = 4096,
    localparam int AW    = (DEPTH > 1) ? $clog2(DEPTH) : 1
) (
    input  logic          clk,
    input  logic          wr_en,
    input  logic [AW-1:0] wr_addr,
    input  logic [W-1:0]  wr_data,
    input  logic          rd_en,
    input  logic [AW-1:0] rd_addr,
    output logic [W-1:0]  rd_data
);
    logic [W-1:0] mem [DEPTH];
    always_ff @(posedge clk) begin
        if (wr_en) mem[wr_addr] <= wr_data;
        if (rd_en) rd_data <= mem[rd_addr];
    end
endmodule
