// tb_stream_player: simulation-only stimulus player and response recorder
// for block-level testbenches (not synthesizable: $readmemh/$writememh).
//
// Why: the Python test must not drive the DUT every cycle (see
// tb/README.md). It writes the whole cycle-by-cycle stimulus to IN_FILE,
// pulses `load` (the memory is read by $readmemh), sets n_stim/n_rep and
// pulses `start`; this module then presents one stimulus word per cycle,
// n_stim words, n_rep times over, and records every word the DUT flags with
// out_valid. When done rises, OUT_FILE holds the last pass's outputs
// (n_out words) and cycles/latency are valid. Each pass must end with enough
// idle words for the DUT to drain: output addresses restart at every pass.
module tb_stream_player #(
    parameter int    IN_W      = 8,
    parameter int    OUT_W     = 8,
    parameter int    IN_DEPTH  = 1024,
    parameter int    OUT_DEPTH = 1024,
    parameter string IN_FILE   = "stim.hex",
    parameter string OUT_FILE  = "out.hex"
) (
    input  logic             clk,
    input  logic             rst_n,
    input  logic             load,
    input  logic             start,
    input  logic [31:0]      n_stim,
    input  logic [31:0]      n_rep,
    output logic [IN_W-1:0]  stim,        // to the DUT, registered
    input  logic             in_fire,     // the DUT accepted a valid input this cycle
    input  logic             out_valid,
    input  logic [OUT_W-1:0] out_data,
    output logic             done,
    output logic [31:0]      n_out,
    output logic [63:0]      cycles,      // cycles from start to the last stimulus word
    output logic [31:0]      latency      // first out_valid - first in_fire, in cycles
);
    logic [IN_W-1:0]  in_mem  [IN_DEPTH];
    logic [OUT_W-1:0] out_mem [OUT_DEPTH];
    logic             playing, finishing, seen_in, seen_out;
    logic [31:0]      idx, rep, oidx;
    logic [63:0]      t_in;

    always @(posedge clk) begin
        if (load) $readmemh(IN_FILE, in_mem);
    end

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            playing <= 1'b0; finishing <= 1'b0; done <= 1'b0;
            idx <= '0; rep <= '0; oidx <= '0; n_out <= '0;
            stim <= '0; cycles <= '0; latency <= '0;
            seen_in <= 1'b0; seen_out <= 1'b0; t_in <= '0;
        end else begin
            finishing <= 1'b0;
            if (out_valid) begin
                out_mem[oidx[$clog2(OUT_DEPTH)-1:0]] <= out_data;
                oidx <= oidx + 1;
            end
            if (start) begin
                playing <= 1'b1; done <= 1'b0;
                idx <= '0; rep <= '0; oidx <= '0; cycles <= '0;
                seen_in <= 1'b0; seen_out <= 1'b0;
            end else if (playing) begin
                stim   <= in_mem[idx[$clog2(IN_DEPTH)-1:0]];
                cycles <= cycles + 64'd1;
                if (idx == n_stim - 1) begin
                    idx <= '0;
                    rep <= rep + 1;
                    if (rep == n_rep - 1) begin
                        playing   <= 1'b0;
                        finishing <= 1'b1;
                    end
                end else begin
                    idx <= idx + 1;
                end
                if (idx == 0) oidx <= '0;   // a new pass: the previous one has drained (overrides the capture count)
            end else begin
                stim <= '0;
            end
            if (finishing) begin
                done  <= 1'b1;
                n_out <= oidx;
            end
            if (in_fire && !seen_in) begin
                seen_in <= 1'b1;
                t_in    <= cycles;
            end
            if (out_valid && !seen_out) begin
                seen_out <= 1'b1;
                latency  <= 32'(cycles - t_in);
            end
        end
    end

    // The result file is written once, when the last pass has drained.
    always @(posedge clk) begin
        if (finishing && oidx != 0) $writememh(OUT_FILE, out_mem, 0, int'(oidx) - 1);
    end
endmodule
