// Shares the read channels of the one AXI4 master between the command fetcher
// (port 0) and the load engine (port 1). One ID, so read data returns in
// request order: a FIFO of burst owners routes R beats. Fetch has priority
// (small, and the dispatcher starves without it); a granted request keeps the
// grant until its AR handshake so ARADDR/ARLEN never change under ARVALID.
// The write channels belong to the store engine alone and do not pass here.
module npu_axi_arb #(
    parameter int unsigned MAX_BURSTS = 8   // read bursts in flight
) (
    input  logic         clk,
    input  logic         rst_n,
    // requesters
    input  logic [1:0]   s_ar_valid,
    output logic [1:0]   s_ar_ready,
    input  logic [31:0]  s_ar_addr [2],
    input  logic [7:0]   s_ar_len [2],
    output logic [1:0]   s_r_valid,
    input  logic [1:0]   s_r_ready,
    // master
    output logic         m_ar_valid,
    input  logic         m_ar_ready,
    output logic [31:0]  m_ar_addr,
    output logic [7:0]   m_ar_len,
    input  logic         m_r_valid,
    output logic         m_r_ready,
    input  logic         m_r_last,
    output logic         idle          // no read burst in flight
);
    localparam int unsigned PW = $clog2(MAX_BURSTS);
    logic own [MAX_BURSTS];
    logic [PW-1:0] wp, rp;
    logic [PW:0]   cnt;
    logic          locked, lock_owner, sel;

    assign sel = locked ? lock_owner : !s_ar_valid[0];
    assign m_ar_valid = s_ar_valid[sel] && cnt < (PW+1)'(MAX_BURSTS);
    assign m_ar_addr  = s_ar_addr[sel];
    assign m_ar_len   = s_ar_len[sel];
    assign s_ar_ready = (m_ar_valid && m_ar_ready) ? (sel ? 2'b10 : 2'b01) : 2'b00;

    logic head;
    assign head = own[rp];
    assign s_r_valid = (cnt != '0 && m_r_valid) ? (head ? 2'b10 : 2'b01) : 2'b00;
    assign m_r_ready = cnt != '0 && s_r_ready[head];
    assign idle = cnt == '0;

    logic ar_hs, r_done;
    assign ar_hs  = m_ar_valid && m_ar_ready;
    assign r_done = m_r_valid && m_r_ready && m_r_last;

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            wp <= '0; rp <= '0; cnt <= '0; locked <= 1'b0; lock_owner <= 1'b0;
        end else begin
            locked <= m_ar_valid && !m_ar_ready;
            lock_owner <= sel;
            if (ar_hs) begin own[wp] <= sel; wp <= wp + 1'b1; end
            if (r_done) rp <= rp + 1'b1;
            if (ar_hs && !r_done) cnt <= cnt + 1'b1;
            else if (!ar_hs && r_done) cnt <= cnt - 1'b1;
        end
    end
endmodule
