// Static checks of one instruction (combinational; npu_cmd decodes each
// instruction once, as it enters the instruction buffer): the error the
// hardware reports for it (ILLEGAL_OPCODE, RESERVED_BITS, BAD_FIELD) or NONE,
// and which queue it goes to. Mirrors presil.golden.isa.decode (opcode,
// reserved bits incl. dependency flags the engine has no stage for, field
// min/max) plus presil.golden.footprint.check_static (word-multiple DRAM
// offsets, clamp order, Q31 multipliers, cb range, SRAM ranges against this
// build's depths). Every position and bound comes from npu_isa_pkg.
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

    // Value of a field (sign-extended when signed).
    function automatic longint fv(input logic [INSTR_BITS-1:0] w, input int unsigned lsb,
                                  input int unsigned width, input bit sgn);
        logic [63:0] raw;
        raw = 64'(w >> lsb) & ((64'd1 << width) - 64'd1);
        if (sgn && raw[width-1]) return longint'(raw) - (longint'(1) << width);
        return longint'(raw);
    endfunction

    function automatic bit rng(input logic [INSTR_BITS-1:0] w, input int unsigned lsb,
                               input int unsigned width, input bit sgn, input longint mn, input longint mx);
        longint v;
        v = fv(w, lsb, width, sgn);
        return v >= mn && v <= mx;
    endfunction

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

    // Field ranges per opcode (isa.decode): 1 = every field within [min, max].
    function automatic bit rng_load(input logic [INSTR_BITS-1:0] i);
        return rng(i, LOAD_MEM_LSB, LOAD_MEM_W, LOAD_MEM_SIGNED, LOAD_MEM_MIN, LOAD_MEM_MAX)
            && rng(i, LOAD_DRAM_OFFSET_LSB, LOAD_DRAM_OFFSET_W, LOAD_DRAM_OFFSET_SIGNED, LOAD_DRAM_OFFSET_MIN, LOAD_DRAM_OFFSET_MAX)
            && rng(i, LOAD_DRAM_STRIDE_LSB, LOAD_DRAM_STRIDE_W, LOAD_DRAM_STRIDE_SIGNED, LOAD_DRAM_STRIDE_MIN, LOAD_DRAM_STRIDE_MAX)
            && rng(i, LOAD_SRAM_ADDR_LSB, LOAD_SRAM_ADDR_W, LOAD_SRAM_ADDR_SIGNED, LOAD_SRAM_ADDR_MIN, LOAD_SRAM_ADDR_MAX)
            && rng(i, LOAD_SRAM_STRIDE_LSB, LOAD_SRAM_STRIDE_W, LOAD_SRAM_STRIDE_SIGNED, LOAD_SRAM_STRIDE_MIN, LOAD_SRAM_STRIDE_MAX)
            && rng(i, LOAD_Y_COUNT_LSB, LOAD_Y_COUNT_W, LOAD_Y_COUNT_SIGNED, LOAD_Y_COUNT_MIN, LOAD_Y_COUNT_MAX)
            && rng(i, LOAD_X_WORDS_LSB, LOAD_X_WORDS_W, LOAD_X_WORDS_SIGNED, LOAD_X_WORDS_MIN, LOAD_X_WORDS_MAX);
    endfunction
    function automatic bit rng_store(input logic [INSTR_BITS-1:0] i);
        return rng(i, STORE_MEM_LSB, STORE_MEM_W, STORE_MEM_SIGNED, STORE_MEM_MIN, STORE_MEM_MAX)
            && rng(i, STORE_DRAM_OFFSET_LSB, STORE_DRAM_OFFSET_W, STORE_DRAM_OFFSET_SIGNED, STORE_DRAM_OFFSET_MIN, STORE_DRAM_OFFSET_MAX)
            && rng(i, STORE_DRAM_STRIDE_LSB, STORE_DRAM_STRIDE_W, STORE_DRAM_STRIDE_SIGNED, STORE_DRAM_STRIDE_MIN, STORE_DRAM_STRIDE_MAX)
            && rng(i, STORE_SRAM_ADDR_LSB, STORE_SRAM_ADDR_W, STORE_SRAM_ADDR_SIGNED, STORE_SRAM_ADDR_MIN, STORE_SRAM_ADDR_MAX)
            && rng(i, STORE_SRAM_STRIDE_LSB, STORE_SRAM_STRIDE_W, STORE_SRAM_STRIDE_SIGNED, STORE_SRAM_STRIDE_MIN, STORE_SRAM_STRIDE_MAX)
            && rng(i, STORE_Y_COUNT_LSB, STORE_Y_COUNT_W, STORE_Y_COUNT_SIGNED, STORE_Y_COUNT_MIN, STORE_Y_COUNT_MAX)
            && rng(i, STORE_X_WORDS_LSB, STORE_X_WORDS_W, STORE_X_WORDS_SIGNED, STORE_X_WORDS_MIN, STORE_X_WORDS_MAX);
    endfunction
    function automatic bit rng_gemm(input logic [INSTR_BITS-1:0] i);
        return rng(i, GEMM_ACCUMULATE_LSB, GEMM_ACCUMULATE_W, GEMM_ACCUMULATE_SIGNED, GEMM_ACCUMULATE_MIN, GEMM_ACCUMULATE_MAX)
            && rng(i, GEMM_IN_ADDR_LSB, GEMM_IN_ADDR_W, GEMM_IN_ADDR_SIGNED, GEMM_IN_ADDR_MIN, GEMM_IN_ADDR_MAX)
            && rng(i, GEMM_IN_H_LSB, GEMM_IN_H_W, GEMM_IN_H_SIGNED, GEMM_IN_H_MIN, GEMM_IN_H_MAX)
            && rng(i, GEMM_IN_W_LSB, GEMM_IN_W_W, GEMM_IN_W_SIGNED, GEMM_IN_W_MIN, GEMM_IN_W_MAX)
            && rng(i, GEMM_IN_CB_LSB, GEMM_IN_CB_W, GEMM_IN_CB_SIGNED, GEMM_IN_CB_MIN, GEMM_IN_CB_MAX)
            && rng(i, GEMM_CB_START_LSB, GEMM_CB_START_W, GEMM_CB_START_SIGNED, GEMM_CB_START_MIN, GEMM_CB_START_MAX)
            && rng(i, GEMM_CB_COUNT_LSB, GEMM_CB_COUNT_W, GEMM_CB_COUNT_SIGNED, GEMM_CB_COUNT_MIN, GEMM_CB_COUNT_MAX)
            && rng(i, GEMM_OUT_H_LSB, GEMM_OUT_H_W, GEMM_OUT_H_SIGNED, GEMM_OUT_H_MIN, GEMM_OUT_H_MAX)
            && rng(i, GEMM_OUT_W_LSB, GEMM_OUT_W_W, GEMM_OUT_W_SIGNED, GEMM_OUT_W_MIN, GEMM_OUT_W_MAX)
            && rng(i, GEMM_K_H_LSB, GEMM_K_H_W, GEMM_K_H_SIGNED, GEMM_K_H_MIN, GEMM_K_H_MAX)
            && rng(i, GEMM_K_W_LSB, GEMM_K_W_W, GEMM_K_W_SIGNED, GEMM_K_W_MIN, GEMM_K_W_MAX)
            && rng(i, GEMM_STRIDE_H_LSB, GEMM_STRIDE_H_W, GEMM_STRIDE_H_SIGNED, GEMM_STRIDE_H_MIN, GEMM_STRIDE_H_MAX)
            && rng(i, GEMM_STRIDE_W_LSB, GEMM_STRIDE_W_W, GEMM_STRIDE_W_SIGNED, GEMM_STRIDE_W_MIN, GEMM_STRIDE_W_MAX)
            && rng(i, GEMM_PAD_T_LSB, GEMM_PAD_T_W, GEMM_PAD_T_SIGNED, GEMM_PAD_T_MIN, GEMM_PAD_T_MAX)
            && rng(i, GEMM_PAD_L_LSB, GEMM_PAD_L_W, GEMM_PAD_L_SIGNED, GEMM_PAD_L_MIN, GEMM_PAD_L_MAX)
            && rng(i, GEMM_IN_ZP_LSB, GEMM_IN_ZP_W, GEMM_IN_ZP_SIGNED, GEMM_IN_ZP_MIN, GEMM_IN_ZP_MAX)
            && rng(i, GEMM_WGT_ADDR_LSB, GEMM_WGT_ADDR_W, GEMM_WGT_ADDR_SIGNED, GEMM_WGT_ADDR_MIN, GEMM_WGT_ADDR_MAX)
            && rng(i, GEMM_ACC_ADDR_LSB, GEMM_ACC_ADDR_W, GEMM_ACC_ADDR_SIGNED, GEMM_ACC_ADDR_MIN, GEMM_ACC_ADDR_MAX);
    endfunction
    function automatic bit rng_post(input logic [INSTR_BITS-1:0] i);
        return rng(i, POST_ACC_ADDR_LSB, POST_ACC_ADDR_W, POST_ACC_ADDR_SIGNED, POST_ACC_ADDR_MIN, POST_ACC_ADDR_MAX)
            && rng(i, POST_OUT_ADDR_LSB, POST_OUT_ADDR_W, POST_OUT_ADDR_SIGNED, POST_OUT_ADDR_MIN, POST_OUT_ADDR_MAX)
            && rng(i, POST_COUNT_LSB, POST_COUNT_W, POST_COUNT_SIGNED, POST_COUNT_MIN, POST_COUNT_MAX)
            && rng(i, POST_OUT_STRIDE_LSB, POST_OUT_STRIDE_W, POST_OUT_STRIDE_SIGNED, POST_OUT_STRIDE_MIN, POST_OUT_STRIDE_MAX)
            && rng(i, POST_PAR_ADDR_LSB, POST_PAR_ADDR_W, POST_PAR_ADDR_SIGNED, POST_PAR_ADDR_MIN, POST_PAR_ADDR_MAX)
            && rng(i, POST_OUT_ZP_LSB, POST_OUT_ZP_W, POST_OUT_ZP_SIGNED, POST_OUT_ZP_MIN, POST_OUT_ZP_MAX)
            && rng(i, POST_CLAMP_MIN_LSB, POST_CLAMP_MIN_W, POST_CLAMP_MIN_SIGNED, POST_CLAMP_MIN_MIN, POST_CLAMP_MIN_MAX)
            && rng(i, POST_CLAMP_MAX_LSB, POST_CLAMP_MAX_W, POST_CLAMP_MAX_SIGNED, POST_CLAMP_MAX_MIN, POST_CLAMP_MAX_MAX);
    endfunction
    function automatic bit rng_add(input logic [INSTR_BITS-1:0] i);
        return rng(i, ADD_A_ADDR_LSB, ADD_A_ADDR_W, ADD_A_ADDR_SIGNED, ADD_A_ADDR_MIN, ADD_A_ADDR_MAX)
            && rng(i, ADD_B_ADDR_LSB, ADD_B_ADDR_W, ADD_B_ADDR_SIGNED, ADD_B_ADDR_MIN, ADD_B_ADDR_MAX)
            && rng(i, ADD_OUT_ADDR_LSB, ADD_OUT_ADDR_W, ADD_OUT_ADDR_SIGNED, ADD_OUT_ADDR_MIN, ADD_OUT_ADDR_MAX)
            && rng(i, ADD_COUNT_LSB, ADD_COUNT_W, ADD_COUNT_SIGNED, ADD_COUNT_MIN, ADD_COUNT_MAX)
            && rng(i, ADD_A_ZP_LSB, ADD_A_ZP_W, ADD_A_ZP_SIGNED, ADD_A_ZP_MIN, ADD_A_ZP_MAX)
            && rng(i, ADD_B_ZP_LSB, ADD_B_ZP_W, ADD_B_ZP_SIGNED, ADD_B_ZP_MIN, ADD_B_ZP_MAX)
            && rng(i, ADD_OUT_ZP_LSB, ADD_OUT_ZP_W, ADD_OUT_ZP_SIGNED, ADD_OUT_ZP_MIN, ADD_OUT_ZP_MAX)
            && rng(i, ADD_CLAMP_MIN_LSB, ADD_CLAMP_MIN_W, ADD_CLAMP_MIN_SIGNED, ADD_CLAMP_MIN_MIN, ADD_CLAMP_MIN_MAX)
            && rng(i, ADD_CLAMP_MAX_LSB, ADD_CLAMP_MAX_W, ADD_CLAMP_MAX_SIGNED, ADD_CLAMP_MAX_MIN, ADD_CLAMP_MAX_MAX)
            && rng(i, ADD_A_MULT_LSB, ADD_A_MULT_W, ADD_A_MULT_SIGNED, ADD_A_MULT_MIN, ADD_A_MULT_MAX)
            && rng(i, ADD_A_SHIFT_LSB, ADD_A_SHIFT_W, ADD_A_SHIFT_SIGNED, ADD_A_SHIFT_MIN, ADD_A_SHIFT_MAX)
            && rng(i, ADD_B_MULT_LSB, ADD_B_MULT_W, ADD_B_MULT_SIGNED, ADD_B_MULT_MIN, ADD_B_MULT_MAX)
            && rng(i, ADD_B_SHIFT_LSB, ADD_B_SHIFT_W, ADD_B_SHIFT_SIGNED, ADD_B_SHIFT_MIN, ADD_B_SHIFT_MAX)
            && rng(i, ADD_OUT_MULT_LSB, ADD_OUT_MULT_W, ADD_OUT_MULT_SIGNED, ADD_OUT_MULT_MIN, ADD_OUT_MULT_MAX)
            && rng(i, ADD_OUT_SHIFT_LSB, ADD_OUT_SHIFT_W, ADD_OUT_SHIFT_SIGNED, ADD_OUT_SHIFT_MIN, ADD_OUT_SHIFT_MAX);
    endfunction
    function automatic bit rng_pool(input logic [INSTR_BITS-1:0] i);
        return rng(i, POOL_MODE_LSB, POOL_MODE_W, POOL_MODE_SIGNED, POOL_MODE_MIN, POOL_MODE_MAX)
            && rng(i, POOL_COUNT_INCLUDE_PAD_LSB, POOL_COUNT_INCLUDE_PAD_W, POOL_COUNT_INCLUDE_PAD_SIGNED, POOL_COUNT_INCLUDE_PAD_MIN, POOL_COUNT_INCLUDE_PAD_MAX)
            && rng(i, POOL_IN_ADDR_LSB, POOL_IN_ADDR_W, POOL_IN_ADDR_SIGNED, POOL_IN_ADDR_MIN, POOL_IN_ADDR_MAX)
            && rng(i, POOL_IN_H_LSB, POOL_IN_H_W, POOL_IN_H_SIGNED, POOL_IN_H_MIN, POOL_IN_H_MAX)
            && rng(i, POOL_IN_W_LSB, POOL_IN_W_W, POOL_IN_W_SIGNED, POOL_IN_W_MIN, POOL_IN_W_MAX)
            && rng(i, POOL_IN_CB_LSB, POOL_IN_CB_W, POOL_IN_CB_SIGNED, POOL_IN_CB_MIN, POOL_IN_CB_MAX)
            && rng(i, POOL_OUT_H_LSB, POOL_OUT_H_W, POOL_OUT_H_SIGNED, POOL_OUT_H_MIN, POOL_OUT_H_MAX)
            && rng(i, POOL_OUT_W_LSB, POOL_OUT_W_W, POOL_OUT_W_SIGNED, POOL_OUT_W_MIN, POOL_OUT_W_MAX)
            && rng(i, POOL_K_H_LSB, POOL_K_H_W, POOL_K_H_SIGNED, POOL_K_H_MIN, POOL_K_H_MAX)
            && rng(i, POOL_K_W_LSB, POOL_K_W_W, POOL_K_W_SIGNED, POOL_K_W_MIN, POOL_K_W_MAX)
            && rng(i, POOL_STRIDE_H_LSB, POOL_STRIDE_H_W, POOL_STRIDE_H_SIGNED, POOL_STRIDE_H_MIN, POOL_STRIDE_H_MAX)
            && rng(i, POOL_STRIDE_W_LSB, POOL_STRIDE_W_W, POOL_STRIDE_W_SIGNED, POOL_STRIDE_W_MIN, POOL_STRIDE_W_MAX)
            && rng(i, POOL_PAD_T_LSB, POOL_PAD_T_W, POOL_PAD_T_SIGNED, POOL_PAD_T_MIN, POOL_PAD_T_MAX)
            && rng(i, POOL_PAD_L_LSB, POOL_PAD_L_W, POOL_PAD_L_SIGNED, POOL_PAD_L_MIN, POOL_PAD_L_MAX)
            && rng(i, POOL_OUT_ADDR_LSB, POOL_OUT_ADDR_W, POOL_OUT_ADDR_SIGNED, POOL_OUT_ADDR_MIN, POOL_OUT_ADDR_MAX)
            && rng(i, POOL_IN_ZP_LSB, POOL_IN_ZP_W, POOL_IN_ZP_SIGNED, POOL_IN_ZP_MIN, POOL_IN_ZP_MAX)
            && rng(i, POOL_OUT_ZP_LSB, POOL_OUT_ZP_W, POOL_OUT_ZP_SIGNED, POOL_OUT_ZP_MIN, POOL_OUT_ZP_MAX)
            && rng(i, POOL_MULT_LSB, POOL_MULT_W, POOL_MULT_SIGNED, POOL_MULT_MIN, POOL_MULT_MAX)
            && rng(i, POOL_SHIFT_LSB, POOL_SHIFT_W, POOL_SHIFT_SIGNED, POOL_SHIFT_MIN, POOL_SHIFT_MAX);
    endfunction

    // Extra static checks (check_static) per opcode: 1 = BAD_FIELD.
    function automatic bit bad_load(input logic [INSTR_BITS-1:0] i);
        longint mem, wb, dep, off, strd, sa, ss, yc, xw, hi;
        // word size and depth of the target memory
        mem = fv(i, LOAD_MEM_LSB, LOAD_MEM_W, 1'b0);
        wb  = (mem == longint'(MEM_ACT)) ? longint'(ROWS) : (mem == longint'(MEM_WGT)) ? longint'(COLS) : longint'(4 * COLS);
        dep = (mem == longint'(MEM_ACT)) ? longint'(ACT_DEPTH) : (mem == longint'(MEM_WGT)) ? longint'(WGT_DEPTH) : longint'(PAR_DEPTH);
        off = fv(i, LOAD_DRAM_OFFSET_LSB, LOAD_DRAM_OFFSET_W, 1'b0);
        strd = fv(i, LOAD_DRAM_STRIDE_LSB, LOAD_DRAM_STRIDE_W, 1'b0);
        sa = fv(i, LOAD_SRAM_ADDR_LSB, LOAD_SRAM_ADDR_W, 1'b0);
        ss = fv(i, LOAD_SRAM_STRIDE_LSB, LOAD_SRAM_STRIDE_W, 1'b0);
        yc = fv(i, LOAD_Y_COUNT_LSB, LOAD_Y_COUNT_W, 1'b0);
        xw = fv(i, LOAD_X_WORDS_LSB, LOAD_X_WORDS_W, 1'b0);
        hi = sa + (yc - 1) * ss + xw - 1;
        return (off % wb != 0) || (strd % wb != 0) || hi >= dep;
    endfunction

    function automatic bit bad_store(input logic [INSTR_BITS-1:0] i);
        longint off, strd, sa, ss, yc, xw, hi;
        off = fv(i, STORE_DRAM_OFFSET_LSB, STORE_DRAM_OFFSET_W, 1'b0);
        strd = fv(i, STORE_DRAM_STRIDE_LSB, STORE_DRAM_STRIDE_W, 1'b0);
        sa = fv(i, STORE_SRAM_ADDR_LSB, STORE_SRAM_ADDR_W, 1'b0);
        ss = fv(i, STORE_SRAM_STRIDE_LSB, STORE_SRAM_STRIDE_W, 1'b0);
        yc = fv(i, STORE_Y_COUNT_LSB, STORE_Y_COUNT_W, 1'b0);
        xw = fv(i, STORE_X_WORDS_LSB, STORE_X_WORDS_W, 1'b0);
        hi = sa + (yc - 1) * ss + xw - 1;
        return (off % longint'(ROWS) != 0) || (strd % longint'(ROWS) != 0) || hi >= longint'(ACT_DEPTH);
    endfunction

    // cb range, WGT tiles, ACC pixels, ACT tile footprint.
    function automatic bit bad_gemm(input logic [INSTR_BITS-1:0] i);
        longint in_h, in_w, in_cb, cb0, ncb, out_h, out_w, kh, kw, rh, cw, hi;
        in_h = fv(i, GEMM_IN_H_LSB, GEMM_IN_H_W, 1'b0);
        in_w = fv(i, GEMM_IN_W_LSB, GEMM_IN_W_W, 1'b0);
        in_cb = fv(i, GEMM_IN_CB_LSB, GEMM_IN_CB_W, 1'b0);
        cb0 = fv(i, GEMM_CB_START_LSB, GEMM_CB_START_W, 1'b0);
        ncb = fv(i, GEMM_CB_COUNT_LSB, GEMM_CB_COUNT_W, 1'b0);
        out_h = fv(i, GEMM_OUT_H_LSB, GEMM_OUT_H_W, 1'b0);
        out_w = fv(i, GEMM_OUT_W_LSB, GEMM_OUT_W_W, 1'b0);
        kh = fv(i, GEMM_K_H_LSB, GEMM_K_H_W, 1'b0);
        kw = fv(i, GEMM_K_W_LSB, GEMM_K_W_W, 1'b0);
        rh = last_line(out_h, fv(i, GEMM_STRIDE_H_LSB, GEMM_STRIDE_H_W, 1'b0), kh,
                       fv(i, GEMM_PAD_T_LSB, GEMM_PAD_T_W, 1'b0), in_h);
        cw = last_line(out_w, fv(i, GEMM_STRIDE_W_LSB, GEMM_STRIDE_W_W, 1'b0), kw,
                       fv(i, GEMM_PAD_L_LSB, GEMM_PAD_L_W, 1'b0), in_w);
        hi = fv(i, GEMM_IN_ADDR_LSB, GEMM_IN_ADDR_W, 1'b0) + (rh * in_w + cw) * in_cb + cb0 + ncb - 1;
        return (cb0 + ncb > in_cb)
            || (fv(i, GEMM_WGT_ADDR_LSB, GEMM_WGT_ADDR_W, 1'b0) + kh * kw * ncb * longint'(ROWS) - 1 >= longint'(WGT_DEPTH))
            || (fv(i, GEMM_ACC_ADDR_LSB, GEMM_ACC_ADDR_W, 1'b0) + out_h * out_w - 1 >= longint'(ACC_DEPTH))
            || (rh >= 0 && cw >= 0 && hi >= longint'(ACT_DEPTH));
    endfunction

    // Clamp order, ACC/PAR/ACT ranges.
    function automatic bit bad_post(input logic [INSTR_BITS-1:0] i);
        longint yc;
        yc = fv(i, POST_COUNT_LSB, POST_COUNT_W, 1'b0);
        return (fv(i, POST_CLAMP_MIN_LSB, POST_CLAMP_MIN_W, 1'b1) > fv(i, POST_CLAMP_MAX_LSB, POST_CLAMP_MAX_W, 1'b1))
            || (fv(i, POST_ACC_ADDR_LSB, POST_ACC_ADDR_W, 1'b0) + yc - 1 >= longint'(ACC_DEPTH))
            || (fv(i, POST_PAR_ADDR_LSB, POST_PAR_ADDR_W, 1'b0) + 2 >= longint'(PAR_DEPTH))
            || (fv(i, POST_OUT_ADDR_LSB, POST_OUT_ADDR_W, 1'b0)
                + (yc - 1) * fv(i, POST_OUT_STRIDE_LSB, POST_OUT_STRIDE_W, 1'b0) >= longint'(ACT_DEPTH));
    endfunction

    // Clamp order, multipliers, three ACT ranges.
    function automatic bit bad_add(input logic [INSTR_BITS-1:0] i);
        longint yc;
        yc = fv(i, ADD_COUNT_LSB, ADD_COUNT_W, 1'b0);
        return (fv(i, ADD_CLAMP_MIN_LSB, ADD_CLAMP_MIN_W, 1'b1) > fv(i, ADD_CLAMP_MAX_LSB, ADD_CLAMP_MAX_W, 1'b1))
            || bad_mult(fv(i, ADD_A_MULT_LSB, ADD_A_MULT_W, 1'b0))
            || bad_mult(fv(i, ADD_B_MULT_LSB, ADD_B_MULT_W, 1'b0))
            || bad_mult(fv(i, ADD_OUT_MULT_LSB, ADD_OUT_MULT_W, 1'b0))
            || (fv(i, ADD_A_ADDR_LSB, ADD_A_ADDR_W, 1'b0) + yc - 1 >= longint'(ACT_DEPTH))
            || (fv(i, ADD_B_ADDR_LSB, ADD_B_ADDR_W, 1'b0) + yc - 1 >= longint'(ACT_DEPTH))
            || (fv(i, ADD_OUT_ADDR_LSB, ADD_OUT_ADDR_W, 1'b0) + yc - 1 >= longint'(ACT_DEPTH));
    endfunction

    // Multiplier, ACT tile footprint (all blocks), output range.
    function automatic bit bad_pool(input logic [INSTR_BITS-1:0] i);
        longint in_h, in_w, in_cb, out_h, out_w, rh, cw, hi;
        in_h = fv(i, POOL_IN_H_LSB, POOL_IN_H_W, 1'b0);
        in_w = fv(i, POOL_IN_W_LSB, POOL_IN_W_W, 1'b0);
        in_cb = fv(i, POOL_IN_CB_LSB, POOL_IN_CB_W, 1'b0);
        out_h = fv(i, POOL_OUT_H_LSB, POOL_OUT_H_W, 1'b0);
        out_w = fv(i, POOL_OUT_W_LSB, POOL_OUT_W_W, 1'b0);
        rh = last_line(out_h, fv(i, POOL_STRIDE_H_LSB, POOL_STRIDE_H_W, 1'b0), fv(i, POOL_K_H_LSB, POOL_K_H_W, 1'b0),
                       fv(i, POOL_PAD_T_LSB, POOL_PAD_T_W, 1'b0), in_h);
        cw = last_line(out_w, fv(i, POOL_STRIDE_W_LSB, POOL_STRIDE_W_W, 1'b0), fv(i, POOL_K_W_LSB, POOL_K_W_W, 1'b0),
                       fv(i, POOL_PAD_L_LSB, POOL_PAD_L_W, 1'b0), in_w);
        hi = fv(i, POOL_IN_ADDR_LSB, POOL_IN_ADDR_W, 1'b0) + (rh * in_w + cw) * in_cb + in_cb - 1;
        return bad_mult(fv(i, POOL_MULT_LSB, POOL_MULT_W, 1'b0))
            || (rh >= 0 && cw >= 0 && hi >= longint'(ACT_DEPTH))
            || (fv(i, POOL_OUT_ADDR_LSB, POOL_OUT_ADDR_W, 1'b0) + out_h * out_w * in_cb - 1 >= longint'(ACT_DEPTH));
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
                OP_LOAD:  begin resv = LOAD_RESERVED_MASK;  ok_rng = rng_load(instr);  bad = bad_load(instr);  engine = ENG_LOAD;    end
                OP_STORE: begin resv = STORE_RESERVED_MASK; ok_rng = rng_store(instr); bad = bad_store(instr); engine = ENG_STORE;   end
                OP_GEMM:  begin resv = GEMM_RESERVED_MASK;  ok_rng = rng_gemm(instr);  bad = bad_gemm(instr);  engine = ENG_COMPUTE; end
                OP_POST:  begin resv = POST_RESERVED_MASK;  ok_rng = rng_post(instr);  bad = bad_post(instr);  engine = ENG_COMPUTE; end
                OP_ADD:   begin resv = ADD_RESERVED_MASK;   ok_rng = rng_add(instr);   bad = bad_add(instr);   engine = ENG_COMPUTE; end
                OP_POOL:  begin resv = POOL_RESERVED_MASK;  ok_rng = rng_pool(instr);  bad = bad_pool(instr);  engine = ENG_COMPUTE; end
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
