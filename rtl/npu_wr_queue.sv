// npu_wr_queue: FIFO of ACT writes (address + word) between the compute
// engine's result pipelines and the arbitrated ACT write port. The producers
// reserve entries by credits (free), so push never meets a full queue and
// their pipelines never stall; the head is held on the port until granted.
module npu_wr_queue #(
    parameter  int DW    = 128,
    parameter  int DEPTH = 16,
    localparam int PW    = $clog2(DEPTH),
    localparam int CW    = $clog2(DEPTH + 1)
) (
    input  logic          clk,
    input  logic          rst_n,
    input  logic          push,
    input  logic [19:0]   push_addr,
    input  logic [DW-1:0] push_data,
    output logic [CW-1:0] free,
    output logic          empty,
    output logic          wr_req,
    input  logic          wr_gnt,
    output logic [19:0]   wr_addr,
    output logic [DW-1:0] wr_data
);
    logic [19:0]   q_addr [DEPTH];
    logic [DW-1:0] q_data [DEPTH];
    logic [PW-1:0] rd_p, wr_p;
    logic [CW-1:0] count;
    logic          pop;

    assign empty   = (count == '0);
    assign free    = CW'(DEPTH) - count;
    assign wr_req  = !empty;
    assign wr_addr = q_addr[rd_p];
    assign wr_data = q_data[rd_p];
    assign pop     = wr_req && wr_gnt;

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            rd_p <= '0; wr_p <= '0; count <= '0;
        end else begin
            if (push) wr_p <= wr_p + PW'(1);
            if (pop)  rd_p <= rd_p + PW'(1);
            count <= count + CW'(push) - CW'(pop);
        end
    end
    always_ff @(posedge clk) begin
        if (push) begin
            q_addr[wr_p] <= push_addr;
            q_data[wr_p] <= push_data;
        end
    end
endmodule
