// Static checks of one instruction (combinational; npu_cmd decodes each
// instruction once, as it enters the instruction buffer): the error the
// hardware reports for it (ILLEGAL_OPCODE, RESERVED_BITS, BAD_FIELD) or NONE,
// and which queue it goes to. Mirrors presil.golden.isa.decode (opcode,
// reserved bits incl. dependency flags the engine has no stage for, field
// min/max) plus presil.golden.footprint.check_static (word-multiple DRAM
// offsets, clamp order, Q31 multipliers, cb range, SRAM ranges against this
// build's depths). Every position and bound comes from npu_isa_pkg, and so
// does the min/max check of every field (<INSTR>_fields_in_range, generated).
module npu_decode
    import npu_isa_pkg::*;
#(
    parameter int unsigned ROWS      = DEFAULT_ROWS,
    parameter int unsigned COLS      = DEFAULT_COLS,
    parameter int unsigned ACT_DEPTH = ACT_DEFAULT_DEPTH,
    parameter int unsigned WGT_DEPTH = WGT_DEFAULT_DEPTH,
    parameter int unsigned PAR_DEPTH = PAR_DEFAULT_DEPTH,
    parameter int unsigned ACC_DEPTH = ACC_DEFAULT_DEPTH
) (
    input  logic                  valid,   // an instruction is presented (else all outputs 0)
    input  logic [INSTR_BITS-1:0] instr,
    output logic [7:0]            err,     // err_code_e value, 0 = legal
    output logic [1:0]            engine,  // ENG_* below
    output logic                  is_end,
    output logic                  is_fence
);
    localparam logic [1:0] ENG_DISPATCH = 2'd0, ENG_LOAD = 2'd1, ENG_COMPUTE = 2'd2, ENG_STORE = 2'd3;

    // Largest input line (row or column) that some output window reads inside
    // [0, size), or a negative value when none does (footprint._window_lines).
    // The last window starting inside the tile is the one reaching furthest.
    function automatic longint last_line(input longint out_n, input longint s, input longint k,
                                         input longint pad, input longint size);
        longint o, hi;
        o = (size - 1 + pad) / ((s == 0) ? 1 : s);
        if (o > out_n - 1) o = out_n - 1;
        hi = o * s - pad + k - 1;
        if (hi > size - 1) hi = size - 1;
        return hi;
    endfunction

    // A Q31 multiplier is 0 or in [2^30, 2^31) (arith.Q31_MIN).
    function automatic bit bad_mult(input longint m);
        return m != 0 && m < (longint'(1) << 30);
    endfunction

    logic [7:0] op;
    assign op = instr[OPCODE_LSB +: OPCODE_W];

    // Extra static checks (check_static) per opcode: 1 = BAD_FIELD.
    function automatic bit bad_load(input logic [INSTR_BITS-1:0] i);
        longint mem, wb, dep, off, strd, sa, ss, yc, xw, hi;
        // word size and depth of the target memory
        mem = field_value(i, LOAD_MEM_LSB, LOAD_MEM_W, 1'b0);
        wb  = (mem == longint'(MEM_ACT)) ? longint'(ROWS) : (mem == longint'(MEM_WGT)) ? longint'(COLS) : longint'(4 * COLS);
        dep = (mem == longint'(MEM_ACT)) ? longint'(ACT_DEPTH) : (mem == longint'(MEM_WGT)) ? longint'(WGT_DEPTH) : longint'(PAR_DEPTH);
        off = field_value(i, LOAD_DRAM_OFFSET_LSB, LOAD_DRAM_OFFSET_W, 1'b0);
        strd = field_value(i, LOAD_DRAM_STRIDE_LSB, LOAD_DRAM_STRIDE_W, 1'b0);
        sa = field_value(i, LOAD_SRAM_ADDR_LSB, LOAD_SRAM_ADDR_W, 1'b0);
        ss = field_value(i, LOAD_SRAM_STRIDE_LSB, LOAD_SRAM_STRIDE_W, 1'b0);
        yc = field_value(i, LOAD_Y_COUNT_LSB, LOAD_Y_COUNT_W, 1'b0);
        xw = field_value(i, LOAD_X_WORDS_LSB, LOAD_X_WORDS_W, 1'b0);
        hi = sa + (yc - 1) * ss + xw - 1;
        return (off % wb != 0) || (strd % wb != 0) || hi >= dep;
    endfunction

    function automatic bit bad_store(input logic [INSTR_BITS-1:0] i);
        longint off, strd, sa, ss, yc, xw, hi;
        off = field_value(i, STORE_DRAM_OFFSET_LSB, STORE_DRAM_OFFSET_W, 1'b0);
        strd = field_value(i, STORE_DRAM_STRIDE_LSB, STORE_DRAM_STRIDE_W, 1'b0);
        sa = field_value(i, STORE_SRAM_ADDR_LSB, STORE_SRAM_ADDR_W, 1'b0);
        ss = field_value(i, STORE_SRAM_STRIDE_LSB, STORE_SRAM_STRIDE_W, 1'b0);
        yc = field_value(i, STORE_Y_COUNT_LSB, STORE_Y_COUNT_W, 1'b0);
        xw = field_value(i, STORE_X_WORDS_LSB, STORE_X_WORDS_W, 1'b0);
        hi = sa + (yc - 1) * ss + xw - 1;
        return (off % longint'(ROWS) != 0) || (strd % longint'(ROWS) != 0) || hi >= longint'(ACT_DEPTH);
    endfunction

    // cb range, WGT tiles, ACC pixels, ACT tile footprint.
    function automatic bit bad_gemm(input logic [INSTR_BITS-1:0] i);
        longint in_h, in_w, in_cb, cb0, ncb, out_h, out_w, kh, kw, rh, cw, hi;
        in_h = field_value(i, GEMM_IN_H_LSB, GEMM_IN_H_W, 1'b0);
        in_w = field_value(i, GEMM_IN_W_LSB, GEMM_IN_W_W, 1'b0);
        in_cb = field_value(i, GEMM_IN_CB_LSB, GEMM_IN_CB_W, 1'b0);
        cb0 = field_value(i, GEMM_CB_START_LSB, GEMM_CB_START_W, 1'b0);
        ncb = field_value(i, GEMM_CB_COUNT_LSB, GEMM_CB_COUNT_W, 1'b0);
        out_h = field_value(i, GEMM_OUT_H_LSB, GEMM_OUT_H_W, 1'b0);
        out_w = field_value(i, GEMM_OUT_W_LSB, GEMM_OUT_W_W, 1'b0);
        kh = field_value(i, GEMM_K_H_LSB, GEMM_K_H_W, 1'b0);
        kw = field_value(i, GEMM_K_W_LSB, GEMM_K_W_W, 1'b0);
        rh = last_line(out_h, field_value(i, GEMM_STRIDE_H_LSB, GEMM_STRIDE_H_W, 1'b0), kh,
                       field_value(i, GEMM_PAD_T_LSB, GEMM_PAD_T_W, 1'b0), in_h);
        cw = last_line(out_w, field_value(i, GEMM_STRIDE_W_LSB, GEMM_STRIDE_W_W, 1'b0), kw,
                       field_value(i, GEMM_PAD_L_LSB, GEMM_PAD_L_W, 1'b0), in_w);
        hi = field_value(i, GEMM_IN_ADDR_LSB, GEMM_IN_ADDR_W, 1'b0) + (rh * in_w + cw) * in_cb + cb0 + ncb - 1;
        return (cb0 + ncb > in_cb)
            || (field_value(i, GEMM_WGT_ADDR_LSB, GEMM_WGT_ADDR_W, 1'b0) + kh * kw * ncb * longint'(ROWS) - 1 >= longint'(WGT_DEPTH))
            || (field_value(i, GEMM_ACC_ADDR_LSB, GEMM_ACC_ADDR_W, 1'b0) + out_h * out_w - 1 >= longint'(ACC_DEPTH))
            || (rh >= 0 && cw >= 0 && hi >= longint'(ACT_DEPTH));
    endfunction

    // Clamp order, ACC/PAR/ACT ranges.
    function automatic bit bad_post(input logic [INSTR_BITS-1:0] i);
        longint yc;
        yc = field_value(i, POST_COUNT_LSB, POST_COUNT_W, 1'b0);
        return (field_value(i, POST_CLAMP_MIN_LSB, POST_CLAMP_MIN_W, 1'b1) > field_value(i, POST_CLAMP_MAX_LSB, POST_CLAMP_MAX_W, 1'b1))
            || (field_value(i, POST_ACC_ADDR_LSB, POST_ACC_ADDR_W, 1'b0) + yc - 1 >= longint'(ACC_DEPTH))
            || (field_value(i, POST_PAR_ADDR_LSB, POST_PAR_ADDR_W, 1'b0) + 2 >= longint'(PAR_DEPTH))
            || (field_value(i, POST_OUT_ADDR_LSB, POST_OUT_ADDR_W, 1'b0)
                + (yc - 1) * field_value(i, POST_OUT_STRIDE_LSB, POST_OUT_STRIDE_W, 1'b0) >= longint'(ACT_DEPTH));
    endfunction

    // Clamp order, multipliers, three ACT ranges.
    function automatic bit bad_add(input logic [INSTR_BITS-1:0] i);
        longint yc;
        yc = field_value(i, ADD_COUNT_LSB, ADD_COUNT_W, 1'b0);
        return (field_value(i, ADD_CLAMP_MIN_LSB, ADD_CLAMP_MIN_W, 1'b1) > field_value(i, ADD_CLAMP_MAX_LSB, ADD_CLAMP_MAX_W, 1'b1))
            || bad_mult(field_value(i, ADD_A_MULT_LSB, ADD_A_MULT_W, 1'b0))
            || bad_mult(field_value(i, ADD_B_MULT_LSB, ADD_B_MULT_W, 1'b0))
            || bad_mult(field_value(i, ADD_OUT_MULT_LSB, ADD_OUT_MULT_W, 1'b0))
            || (field_value(i, ADD_A_ADDR_LSB, ADD_A_ADDR_W, 1'b0) + yc - 1 >= longint'(ACT_DEPTH))
            || (field_value(i, ADD_B_ADDR_LSB, ADD_B_ADDR_W, 1'b0) + yc - 1 >= longint'(ACT_DEPTH))
            || (field_value(i, ADD_OUT_ADDR_LSB, ADD_OUT_ADDR_W, 1'b0) + yc - 1 >= longint'(ACT_DEPTH));
    endfunction

    // Multiplier, ACT tile footprint (all blocks), output range.
    function automatic bit bad_pool(input logic [INSTR_BITS-1:0] i);
        longint in_h, in_w, in_cb, out_h, out_w, rh, cw, hi;
        in_h = field_value(i, POOL_IN_H_LSB, POOL_IN_H_W, 1'b0);
        in_w = field_value(i, POOL_IN_W_LSB, POOL_IN_W_W, 1'b0);
        in_cb = field_value(i, POOL_IN_CB_LSB, POOL_IN_CB_W, 1'b0);
        out_h = field_value(i, POOL_OUT_H_LSB, POOL_OUT_H_W, 1'b0);
        out_w = field_value(i, POOL_OUT_W_LSB, POOL_OUT_W_W, 1'b0);
        rh = last_line(out_h, field_value(i, POOL_STRIDE_H_LSB, POOL_STRIDE_H_W, 1'b0), field_value(i, POOL_K_H_LSB, POOL_K_H_W, 1'b0),
                       field_value(i, POOL_PAD_T_LSB, POOL_PAD_T_W, 1'b0), in_h);
        cw = last_line(out_w, field_value(i, POOL_STRIDE_W_LSB, POOL_STRIDE_W_W, 1'b0), field_value(i, POOL_K_W_LSB, POOL_K_W_W, 1'b0),
                       field_value(i, POOL_PAD_L_LSB, POOL_PAD_L_W, 1'b0), in_w);
        hi = field_value(i, POOL_IN_ADDR_LSB, POOL_IN_ADDR_W, 1'b0) + (rh * in_w + cw) * in_cb + in_cb - 1;
        return bad_mult(field_value(i, POOL_MULT_LSB, POOL_MULT_W, 1'b0))
            || (rh >= 0 && cw >= 0 && hi >= longint'(ACT_DEPTH))
            || (field_value(i, POOL_OUT_ADDR_LSB, POOL_OUT_ADDR_W, 1'b0) + out_h * out_w * in_cb - 1 >= longint'(ACT_DEPTH));
    endfunction

    // Opcode -> reserved mask, field checks, engine. Only the checks of the
    // presented opcode are evaluated, and nothing without `valid` (a simulator
    // then spends no time here on the cycles without an instruction).
    always_comb begin
        logic [INSTR_BITS-1:0] resv;
        logic ok_rng, bad;
        logic known;
        known = 1'b1; resv = '0; ok_rng = 1'b1; bad = 1'b0;
        engine = ENG_DISPATCH; is_end = 1'b0; is_fence = 1'b0; err = npu_regmap_pkg::ERR_CODE_NONE;
        if (valid) begin
            unique case (op)
                OP_NOP:   resv = NOP_RESERVED_MASK;
                OP_LOAD:  begin resv = LOAD_RESERVED_MASK;  ok_rng = LOAD_fields_in_range(instr);  bad = bad_load(instr);  engine = ENG_LOAD;    end
                OP_STORE: begin resv = STORE_RESERVED_MASK; ok_rng = STORE_fields_in_range(instr); bad = bad_store(instr); engine = ENG_STORE;   end
                OP_GEMM:  begin resv = GEMM_RESERVED_MASK;  ok_rng = GEMM_fields_in_range(instr);  bad = bad_gemm(instr);  engine = ENG_COMPUTE; end
                OP_POST:  begin resv = POST_RESERVED_MASK;  ok_rng = POST_fields_in_range(instr);  bad = bad_post(instr);  engine = ENG_COMPUTE; end
                OP_ADD:   begin resv = ADD_RESERVED_MASK;   ok_rng = ADD_fields_in_range(instr);   bad = bad_add(instr);   engine = ENG_COMPUTE; end
                OP_POOL:  begin resv = POOL_RESERVED_MASK;  ok_rng = POOL_fields_in_range(instr);  bad = bad_pool(instr);  engine = ENG_COMPUTE; end
                OP_FENCE: begin resv = FENCE_RESERVED_MASK; is_fence = 1'b1; end
                OP_END:   begin resv = END_RESERVED_MASK;   is_end = 1'b1;   end
                default:  known = 1'b0;
            endcase
            if (!known)              err = npu_regmap_pkg::ERR_CODE_ILLEGAL_OPCODE;
            else if (|(instr & resv)) err = npu_regmap_pkg::ERR_CODE_RESERVED_BITS;
            else if (!ok_rng || bad) err = npu_regmap_pkg::ERR_CODE_BAD_FIELD;
        end
    end
endmodule
