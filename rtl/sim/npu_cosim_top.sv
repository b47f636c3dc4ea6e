// Simulation top for the `sim:` co-simulation (rtl/sim/cosim_main.cpp): npu_top
// with its AXI4 master on the C++ memory model (axi_mem + axi_mem_dpi.cpp).
// The C++ harness drives clk, rst_n and the AXI4-Lite port directly (ports of
// the top are C++ members, so nothing needs to be public) and samples irq and
// busy. busy lets the harness keep the clock running only while the NPU works.
module npu_cosim_top #(
    parameter int unsigned ROWS = 16,
    parameter int unsigned COLS = 16
) (
    input  logic        clk,
    input  logic        rst_n,
    input  logic        s_axil_awvalid,
    output logic        s_axil_awready,
    input  logic [11:0] s_axil_awaddr,
    input  logic        s_axil_wvalid,
    output logic        s_axil_wready,
    input  logic [31:0] s_axil_wdata,
    input  logic [3:0]  s_axil_wstrb,
    output logic        s_axil_bvalid,
    input  logic        s_axil_bready,
    output logic [1:0]  s_axil_bresp,
    input  logic        s_axil_arvalid,
    output logic        s_axil_arready,
    input  logic [11:0] s_axil_araddr,
    output logic        s_axil_rvalid,
    input  logic        s_axil_rready,
    output logic [31:0] s_axil_rdata,
    output logic [1:0]  s_axil_rresp,
    output logic        irq,
    output logic        busy
);
    logic         awvalid, awready, wvalid, wready, wlast, bvalid, bready, arvalid, arready, rvalid, rready, rlast;
    logic [31:0]  awaddr, araddr;
    logic [7:0]   awlen, arlen;
    logic [2:0]   awsize, arsize;
    logic [1:0]   awburst, arburst, bresp, rresp;
    logic [127:0] wdata, rdata;
    logic [15:0]  wstrb;

    npu_top #(.ROWS(ROWS), .COLS(COLS), .BUILD_HASH(32'hC051_0001)) u_npu (
        .clk, .rst_n,
        .s_axil_awvalid, .s_axil_awready, .s_axil_awaddr, .s_axil_awprot(3'b000),
        .s_axil_wvalid, .s_axil_wready, .s_axil_wdata, .s_axil_wstrb,
        .s_axil_bvalid, .s_axil_bready, .s_axil_bresp,
        .s_axil_arvalid, .s_axil_arready, .s_axil_araddr, .s_axil_arprot(3'b000),
        .s_axil_rvalid, .s_axil_rready, .s_axil_rdata, .s_axil_rresp,
        .m_axi_awvalid(awvalid), .m_axi_awready(awready), .m_axi_awaddr(awaddr), .m_axi_awlen(awlen),
        .m_axi_awsize(awsize), .m_axi_awburst(awburst),
        .m_axi_wvalid(wvalid), .m_axi_wready(wready), .m_axi_wdata(wdata), .m_axi_wstrb(wstrb), .m_axi_wlast(wlast),
        .m_axi_bvalid(bvalid), .m_axi_bready(bready), .m_axi_bresp(bresp),
        .m_axi_arvalid(arvalid), .m_axi_arready(arready), .m_axi_araddr(araddr), .m_axi_arlen(arlen),
        .m_axi_arsize(arsize), .m_axi_arburst(arburst),
        .m_axi_rvalid(rvalid), .m_axi_rready(rready), .m_axi_rdata(rdata), .m_axi_rresp(rresp), .m_axi_rlast(rlast),
        .irq);

    axi_mem u_mem (
        .clk, .rst_n, .awvalid, .awready, .awaddr, .awlen, .wvalid, .wready, .wdata, .wstrb, .wlast,
        .bvalid, .bready, .bresp, .arvalid, .arready, .araddr, .arlen, .rvalid, .rready, .rdata, .rresp, .rlast);

    // The command processor's BUSY (what STATUS.BUSY shows), by hierarchical
    // reference so that npu_top's port list stays the board's.
    assign busy = u_npu.busy;

    // The memory model implements 16-byte INCR bursts only.
    logic unused;
    assign unused = ^{awsize, awburst, arsize, arburst};
endmodule
