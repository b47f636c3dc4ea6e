// Simulation-only AXI4 slave memory (128-bit data, one ID): the memory and all
// timing live in C++ (axi_mem_dpi.cpp); this shell calls it once per clock
// edge and registers its answers. See tb/memory.py for the Python side.
module axi_mem (
    input  logic         clk,
    input  logic         rst_n,
    input  logic         awvalid,
    output logic         awready,
    input  logic [31:0]  awaddr,
    input  logic [7:0]   awlen,
    input  logic         wvalid,
    output logic         wready,
    input  logic [127:0] wdata,
    input  logic [15:0]  wstrb,
    input  logic         wlast,
    output logic         bvalid,
    input  logic         bready,
    output logic [1:0]   bresp,
    input  logic         arvalid,
    output logic         arready,
    input  logic [31:0]  araddr,
    input  logic [7:0]   arlen,
    output logic         rvalid,
    input  logic         rready,
    output logic [127:0] rdata,
    output logic [1:0]   rresp,
    output logic         rlast
);
    import "DPI-C" function void axi_mem_tick(
        input bit rst,
        input bit arvalid, input int unsigned araddr, input byte unsigned arlen, input bit rready,
        input bit awvalid, input int unsigned awaddr, input byte unsigned awlen,
        input bit wvalid, input bit [127:0] wdata, input shortint unsigned wstrb, input bit wlast,
        input bit bready,
        output bit arready, output bit rvalid, output bit [127:0] rdata, output bit [1:0] rresp,
        output bit rlast, output bit awready, output bit wready, output bit bvalid, output bit [1:0] bresp);

    always_ff @(posedge clk) begin
        bit o_arready, o_rvalid, o_rlast, o_awready, o_wready, o_bvalid;
        bit [127:0] o_rdata;
        bit [1:0] o_rresp, o_bresp;
        axi_mem_tick(!rst_n, arvalid, araddr, arlen, rready, awvalid, awaddr, awlen,
                     wvalid, wdata, wstrb, wlast, bready,
                     o_arready, o_rvalid, o_rdata, o_rresp, o_rlast, o_awready, o_wready, o_bvalid, o_bresp);
        arready <= o_arready; rvalid <= o_rvalid; rdata <= o_rdata; rresp <= o_rresp; rlast <= o_rlast;
        awready <= o_awready; wready <= o_wready; bvalid <= o_bvalid; bresp <= o_bresp;
    end
endmodule
