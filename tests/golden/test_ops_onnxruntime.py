"""golden.ops against onnxruntime running the equivalent ONNX graph.

onnxruntime requantises in float32 with round-half-to-even; the NPU uses
single-rounding fixed point: floor(acc * M / 2**(31 - shift) + 1/2), i.e. the
exact product with the Q31 multiplier rounded once, half toward +inf.  The
two can therefore legitimately differ by 1 LSB, but only where the exact real
output value sits near a rounding boundary (k + 1/2).  Every comparison
below checks exactly that:

* |ours - ort| <= 1 everywhere;
* every mismatch lies within a *computed* window of a half-integer of the
  exact float64 output value.  The window is the sum of the known error
  sources: the Q31 multiplier's relative error (<= 2**-31 of the value:
  mq_window); avg pool's rounding of the scaled sum before dividing by n
  (1/(2n)); add's rounding of each scaled input at 2**-20 of the larger
  input scale; plus a float32 slack for onnxruntime (2**-12 LSB, >> the
  ~2**-16 float32 error on outputs of magnitude <= 2**8).  At exact ties
  (window 0) the rules differ: ours half up, onnxruntime half to even;
* the mismatch rate is below the rate the windows predict (rate_bound).

A mismatch outside the window would mean one side is wrong, not rounding.
Measured rates are printed (run with -s) and listed in docs/arithmetic.md.
"""

import numpy as np
import onnxruntime as ort
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from onnx import TensorProto, helper, numpy_helper

from presil.golden import arith, ops

ORT_SLACK = 2.0**-12
RATES: dict[str, tuple[float, int]] = {}


@pytest.fixture(scope="module", autouse=True)
def _report_rates():
    yield
    print("\nonnxruntime agreement (fraction of elements differing by 1 LSB):")
    for k, (r, n) in sorted(RATES.items()):
        print(f"  {k:48s} {r * 100:7.3f} %  of {n}")


# ----------------------------------------------------------------- helpers

_ONNX_TYPE = {np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8,
              np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int32): TensorProto.INT32}


def run_ort(nodes, inputs: dict, outputs: list, inits: dict, optimize=False):
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, _ONNX_TYPE[a.dtype], a.shape) for n, a in inputs.items()],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    so = ort.SessionOptions()
    # Unoptimised = the literal graph (float QDQ); optimised lets ORT fuse QDQ
    # groups into its own integer kernels (QLinearAdd, QLinearAveragePool...).
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.intra_op_num_threads = 1
    so.log_severity_level = 3  # unused-initializer warnings are expected noise
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, inputs)


def f32(v):
    return np.asarray(v, np.float32)


def nchw(x):
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def nhwc(x):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def check_agreement(name, ours, ref, exact, window, max_rate):
    """The 1-LSB agreement contract described in the module docstring."""
    ours = ours.astype(np.int64)
    ref = ref.astype(np.int64)
    assert ours.shape == ref.shape
    diff = ours - ref
    assert np.abs(diff).max(initial=0) <= 1, f"{name}: |diff| > 1 LSB"
    mism = diff != 0
    dist = np.abs(exact - np.floor(exact) - 0.5)  # distance to nearest k + 1/2
    window = np.broadcast_to(window, exact.shape)
    bad = mism & (dist > window)
    assert not bad.any(), (
        f"{name}: {bad.sum()} mismatches away from a rounding boundary, e.g. exact="
        f"{exact[bad][:5]} ours={ours[bad][:5]} ref={ref[bad][:5]}")
    rate = float(mism.mean())
    RATES[name] = (rate, int(mism.size))
    assert rate <= max_rate, f"{name}: mismatch rate {rate:.4f} > {max_rate}"
    return rate


def mq_window(centred):
    """Our only error before the single rounding, in output LSB: the Q31
    multiplier is within 2**-31 (relative) of the real one (quantize_multiplier),
    so acc * M * 2**(shift-31) is within |value| * 2**-31 of the exact value."""
    return np.abs(centred) * 2.0**-31


def rate_bound(expected_rate, n):
    """Mismatch-rate bound from a predicted rate: the expected count plus a
    3-sigma Poisson margin plus 3 elements (a handful of boundary hits in a
    small sample is not a failure; a systematic extra error is).

    With the fractional part of the exact output ~uniform, an output within
    `w` of k + 1/2 is hit with probability 2w, so a window w predicts a rate
    of 2 * mean(w).  (The old double rounding needed a flat 2 %.)
    """
    e = float(np.mean(expected_rate)) * n
    return (e + 3 * np.sqrt(e) + 3) / n


def ref_conv_acc_int64(x, w, x_zp, stride, pads, groups):
    """Independent int64 conv: pad with x_zp, sliding windows, einsum per group."""
    sh, sw = stride
    pt, pl, pb, pr = pads
    xp = np.pad(x.astype(np.int64), ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=x_zp)
    cout, kh, kw, cin_g = w.shape
    win = sliding_window_view(xp - x_zp, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]  # n,oh,ow,c,kh,kw
    cout_g = cout // groups
    outs = []
    for g in range(groups):
        xg = win[:, :, :, g * cin_g:(g + 1) * cin_g]
        wg = w[g * cout_g:(g + 1) * cout_g].astype(np.int64)  # o,kh,kw,c
        outs.append(np.einsum("nhwcij,oijc->nhwo", xg, wg))
    return np.concatenate(outs, axis=-1)


# ----------------------------------------------------------------- conv

CONV_CASES = [
    # (N, H, W, Cin, Cout, (KH, KW), stride, pads(t, l, b, r), groups)
    (1, 9, 11, 5, 7, (3, 3), (1, 1), (1, 1, 1, 1), 1),
    (2, 10, 7, 6, 9, (3, 2), (2, 1), (0, 1, 2, 0), 3),
    (1, 13, 12, 8, 8, (3, 3), (2, 2), (1, 1, 0, 0), 8),     # depthwise
    (1, 8, 9, 4, 12, (3, 3), (1, 2), (2, 0, 1, 1), 4),      # depthwise, multiplier 3
    (1, 7, 5, 33, 17, (1, 1), (1, 1), (0, 0, 0, 0), 1),     # pointwise
    (1, 32, 30, 3, 16, (7, 7), (2, 2), (3, 3, 3, 3), 1),    # ResNet stem-like
    (1, 20, 20, 48, 40, (3, 3), (1, 1), (1, 1, 1, 1), 1),   # statistics
    (1, 20, 20, 40, 40, (3, 3), (1, 1), (1, 1, 1, 1), 40),  # depthwise statistics
]


def make_conv_case(case, seed):
    n, h, w_, cin, cout, (kh, kw), stride, pads, groups = case
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (n, h, w_, cin), dtype=np.int8)
    w = rng.integers(-127, 128, (cout, kh, kw, cin // groups), dtype=np.int8)
    x_zp = int(rng.integers(-20, 21))
    x_scale = float(f32(rng.uniform(0.01, 0.05)))
    w_scales = f32(rng.uniform(0.002, 0.02, cout)).astype(np.float64)
    bias = rng.integers(-5000, 5000, cout).astype(np.int32)
    acc = ref_conv_acc_int64(x, w, x_zp, stride, pads, groups) + bias
    real = acc * x_scale * w_scales
    y_scale = float(f32(np.percentile(np.abs(real), 99) / 110))
    y_zp = int(rng.integers(-10, 11))
    return dict(x=x, w=w, x_zp=x_zp, x_scale=x_scale, w_scales=w_scales, bias=bias,
                y_scale=y_scale, y_zp=y_zp, stride=stride, pads=pads, groups=groups, acc=acc)


def ort_qlinearconv(c, extra_nodes=None, out_name="y"):
    kh, kw = c["w"].shape[1:3]
    cout = c["w"].shape[0]
    node = helper.make_node(
        "QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"],
        strides=list(c["stride"]), pads=list(c["pads"]), group=c["groups"], kernel_shape=[kh, kw])
    inits = dict(xs=f32(c["x_scale"]), xz=np.array(c["x_zp"], np.int8),
                 w=np.ascontiguousarray(c["w"].transpose(0, 3, 1, 2)),
                 ws=f32(c["w_scales"]), wz=np.zeros(cout, np.int8), ys=f32(c["y_scale"]),
                 yz=np.array(c["y_zp"], np.int8), b=c["bias"])
    nodes = [node] + (extra_nodes or [])
    if extra_nodes:
        inits.update(c.get("extra_inits", {}))
    (y,) = run_ort(nodes, {"x": nchw(c["x"])}, [(out_name, TensorProto.INT8)], inits)
    return nhwc(y)


def golden_conv(c, act=(-128, 127)):
    m, s = ops.conv_requant_params(c["x_scale"], c["w_scales"], c["y_scale"])
    y = ops.conv2d(c["x"], c["w"], c["bias"], x_zp=c["x_zp"], multiplier=m, shift=s,
                   out_zp=c["y_zp"], stride=c["stride"], pads=c["pads"], groups=c["groups"],
                   act_min=act[0], act_max=act[1])
    exact = c["acc"] * (c["x_scale"] * c["w_scales"] / c["y_scale"]) + c["y_zp"]
    return y, exact, s


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c[:5])) + f"g{c[8]}")
def test_conv_acc_exact(case):
    c = make_conv_case(case, 0)
    acc = ops.conv2d_acc(c["x"], c["w"], c["x_zp"], stride=c["stride"], pads=c["pads"],
                         groups=c["groups"])
    assert acc.dtype == np.int32
    assert np.array_equal(acc.astype(np.int64), c["acc"] - c["bias"])


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c[:5])) + f"g{c[8]}")
def test_qlinearconv(case):
    c = make_conv_case(case, 1)
    y, exact, s = golden_conv(c)
    ref = ort_qlinearconv(c)
    # Single rounding: only the multiplier's 2**-31 and ORT's float32 error
    # separate the two, so mismatches need |exact - (k + 1/2)| < ~2**-12.
    window = mq_window(exact - c["y_zp"]) + ORT_SLACK
    check_agreement(f"QLinearConv {case[:5]} g{case[8]}", y, ref, exact, window,
                    rate_bound(2 * window, y.size))


def test_qlinearconv_multiplier_above_one():
    # y_scale tiny -> real multiplier > 1 -> positive shift (total shift < 31).
    # Most outputs saturate; the rest must agree.
    c = make_conv_case(CONV_CASES[0], 2)
    c["y_scale"] = float(f32(c["x_scale"] * c["w_scales"].min() / 3.3))
    y, exact, s = golden_conv(c)
    assert (s > 0).any()
    ref = ort_qlinearconv(c)
    window = mq_window(exact - c["y_zp"]) + ORT_SLACK
    check_agreement("QLinearConv multiplier > 1", y, ref, exact, window,
                    rate_bound(2 * window, y.size))


def test_convinteger_accumulator_bit_exact():
    # ORT's ConvInteger (uint8 x uint8 -> int32) as a third, integer-only
    # reference for the accumulator: shift both operands by +128 and move the
    # zero points with them, which leaves every (x - zx) and (w - zw) unchanged.
    for case in CONV_CASES[:2]:
        c = make_conv_case(case, 3)
        kh, kw = c["w"].shape[1:3]
        xu = (c["x"].astype(np.int16) + 128).astype(np.uint8)
        wu = (c["w"].astype(np.int16) + 128).astype(np.uint8)
        node = helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["y"],
                                strides=list(c["stride"]), pads=list(c["pads"]),
                                group=c["groups"], kernel_shape=[kh, kw])
        (acc_ort,) = run_ort([node], {"x": nchw(xu)}, [("y", TensorProto.INT32)],
                             dict(w=np.ascontiguousarray(wu.transpose(0, 3, 1, 2)),
                                  xz=np.array(c["x_zp"] + 128, np.uint8),
                                  wz=np.array(128, np.uint8)))
        acc = ops.conv2d_acc(c["x"], c["w"], c["x_zp"], stride=c["stride"], pads=c["pads"],
                             groups=c["groups"])
        assert np.array_equal(acc, nhwc(acc_ort))


def test_qlinearconv_tie_heavy_scales():
    # Power-of-two scales (real multiplier 2**-2) make ORT's float path exact
    # and exact ties (k + 1/2) common (acc = 2 mod 4).  At ties ORT rounds half
    # to even, we round half toward +inf; check both rules literally.
    c = make_conv_case(CONV_CASES[4], 4)
    rng = np.random.default_rng(44)
    c["x"] = rng.integers(-9, 10, c["x"].shape).astype(np.int8)
    c["w"] = rng.integers(-9, 10, c["w"].shape).astype(np.int8)
    c["x_zp"], c["bias"] = 1, np.zeros(c["w"].shape[0], np.int32)
    c["acc"] = ref_conv_acc_int64(c["x"], c["w"], 1, c["stride"], c["pads"], c["groups"])
    c["x_scale"], c["w_scales"] = 2.0**-6, np.full(c["w"].shape[0], 2.0**-7)
    c["y_scale"] = 2.0**-11
    y, exact, s = golden_conv(c)
    assert (s == -1).all()
    ref = ort_qlinearconv(c)
    centred = exact - c["y_zp"]
    ties = (exact - np.floor(exact) == 0.5) & (np.abs(exact) < 127)
    assert ties.sum() > 10, "expected ties with power-of-two scales"
    up = np.floor(exact + 0.5)
    even = c["y_zp"] + np.round(centred)  # ORT rounds before adding zp; numpy: half to even
    assert np.array_equal(y[ties], up[ties])
    assert np.array_equal(ref[ties], even[ties])
    # M = 2**30 is exact and so is ORT here, and single rounding adds no error
    # of its own: the ONLY mismatches are the ties where half-even goes down,
    # i.e. floor(centred) even -- predicted exactly (the double rounding also
    # mismatched at acc = 1 mod 4, 23.5 % in all).
    predicted = ties & (np.floor(centred) % 2 == 0)
    assert np.array_equal(y != ref, predicted)
    check_agreement("QLinearConv power-of-two scales (ties)", y, ref, exact, 0.0,
                    float(predicted.mean()))


@pytest.mark.parametrize("act", ["relu", "relu6"])
def test_conv_fused_activation_via_quantizelinear(act):
    # ONNX has no fused activation: QLinearConv -> DQ -> Relu/Clip(0, 6) -> Q
    # with the same scale/zp is what the clamp bounds implement.
    c = make_conv_case(CONV_CASES[6], 5)
    lo, hi = arith.activation_bounds(act, c["y_scale"], c["y_zp"])
    y, exact, s = golden_conv(c, (lo, hi))
    if act == "relu":
        extra = [helper.make_node("Relu", ["yf"], ["yr"])]
    else:
        extra = [helper.make_node("Clip", ["yf", "c0", "c6"], ["yr"])]
    extra = ([helper.make_node("DequantizeLinear", ["y", "ys", "yz"], ["yf"])] + extra +
             [helper.make_node("QuantizeLinear", ["yr", "ys", "yz"], ["yq"])])
    c["extra_inits"] = dict(c0=f32(0.0), c6=f32(6.0))
    ref = ort_qlinearconv(c, extra, "yq")
    assert (y >= lo).all() and (y <= hi).all()
    window = mq_window(exact - c["y_zp"]) + ORT_SLACK
    check_agreement(f"QLinearConv + {act}", y, ref, np.clip(exact, lo, hi), window,
                    rate_bound(2 * window, y.size))


# ----------------------------------------------------------------- matmul / FC

def test_matmulinteger_accumulator_bit_exact():
    rng = np.random.default_rng(6)
    a = rng.integers(-128, 128, (19, 77), dtype=np.int8)
    b = rng.integers(-128, 128, (77, 23), dtype=np.int8)
    (acc_ort,) = run_ort([helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"])],
                         {"a": a}, [("y", TensorProto.INT32)],
                         dict(b=b, az=np.array(-7, np.int8), bz=np.array(5, np.int8)))
    assert np.array_equal(ops.matmul_acc(a, b, -7, 5), acc_ort)
    # and against plain int64
    assert np.array_equal(ops.matmul_acc(a, b, -7, 5),
                          (a.astype(np.int64) + 7) @ (b.astype(np.int64) - 5))


@pytest.mark.parametrize("per_column", [False, True])
def test_qlinearmatmul(per_column):
    rng = np.random.default_rng(7)
    m_, k, n = 64, 200, 48
    a = rng.integers(-128, 128, (m_, k), dtype=np.int8)
    b = rng.integers(-127, 128, (k, n), dtype=np.int8)
    a_zp, a_scale = 9, float(f32(0.03))
    b_scale = f32(rng.uniform(0.002, 0.02, n)) if per_column else f32(np.full(n, 0.011))
    acc = (a.astype(np.int64) - a_zp) @ b.astype(np.int64)
    real = acc * a_scale * b_scale.astype(np.float64)
    y_scale, y_zp = float(f32(np.percentile(np.abs(real), 99) / 110)), -3
    mult, shift = ops.conv_requant_params(a_scale, b_scale, y_scale)
    y = ops.matmul(a, b, a_zp=a_zp, b_zp=0, multiplier=mult, shift=shift, out_zp=y_zp)
    node = helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"])
    (ref,) = run_ort([node], {"a": a}, [("y", TensorProto.INT8)],
                     {"as": f32(a_scale), "az": np.array(a_zp, np.int8), "b": b,
                      "bs": b_scale if per_column else f32(b_scale[0]),
                      "bz": np.zeros(n, np.int8) if per_column else np.array(0, np.int8),
                      "ys": f32(y_scale), "yz": np.array(y_zp, np.int8)})
    exact = acc * (a_scale * b_scale.astype(np.float64) / y_scale) + y_zp
    window = mq_window(exact - y_zp) + ORT_SLACK
    check_agreement(f"QLinearMatMul per_column={per_column}", y, ref, exact, window,
                    rate_bound(2 * window, y.size))
    # fully_connected is the same op with (N_out, K) weights.
    bias = np.zeros(n, np.int32)
    y_fc = ops.fully_connected(a, np.ascontiguousarray(b.T), bias, x_zp=a_zp, multiplier=mult,
                               shift=shift, out_zp=y_zp)
    assert np.array_equal(y_fc, y)


# ----------------------------------------------------------------- add

def qdq_add_graph(optimize, a, b, a_q, b_q, y_q):
    nodes = [helper.make_node("DequantizeLinear", ["a", "as", "az"], ["af"]),
             helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bf"]),
             helper.make_node("Add", ["af", "bf"], ["sf"]),
             helper.make_node("QuantizeLinear", ["sf", "ys", "yz"], ["y"])]
    inits = {"as": f32(a_q[0]), "az": np.array(a_q[1], np.int8),
             "bs": f32(b_q[0]), "bz": np.array(b_q[1], np.int8),
             "ys": f32(y_q[0]), "yz": np.array(y_q[1], np.int8)}
    (y,) = run_ort(nodes, {"a": a, "b": b}, [("y", TensorProto.INT8)], inits, optimize)
    return y


@pytest.mark.parametrize("optimize", [False, True], ids=["float-qdq", "ort-fused"])
@pytest.mark.parametrize("bshape", [(2, 17, 19, 24), (1, 1, 1, 24)], ids=["same", "bcast"])
def test_add(optimize, bshape):
    rng = np.random.default_rng(8)
    a = rng.integers(-128, 128, (2, 17, 19, 24), dtype=np.int8)
    b = rng.integers(-128, 128, bshape, dtype=np.int8)
    a_q = (float(f32(0.037)), 5)
    b_q = (float(f32(0.0213)), -11)
    y_q = (float(f32(0.0571)), 2)
    params = ops.add_params(a_q[0], b_q[0], y_q[0])
    y = ops.add(a, b, a_zp=a_q[1], b_zp=b_q[1], out_zp=y_q[1], params=params)
    ref = qdq_add_graph(optimize, a, b, a_q, b_q, y_q)
    exact = (((a.astype(np.float64) - a_q[1]) * a_q[0] + (b.astype(np.float64) - b_q[1]) * b_q[0])
             / y_q[0] + y_q[1])
    # Each scaled input is rounded once to 1 unit = twice_max / 2**20 of real
    # value: <= 1/2 unit + its multiplier error (|scaled| < 2**27 units, times
    # 2**-31 = 2**-4 units), so <= 1 + 2**-3 units after the sum, i.e.
    # (1 + 2**-3) * real_out LSB; plus the output multiplier's error.
    real_out = 2 * max(a_q[0], b_q[0]) / (2**20 * y_q[0])
    window = (1 + 2**-3) * real_out + mq_window(exact - y_q[1]) + ORT_SLACK
    bound = rate_bound(2 * window, y.size)  # window ~2**-12 LSB: ~0.05 % + margin
    check_agreement(f"Add QDQ {'fused' if optimize else 'float'} {bshape}", y, ref, exact,
                    window, bound)
    # float64 model (no integer Add kernel in plain ONNX): same contract.
    f64 = np.clip(np.floor(exact + 0.5), -128, 127)
    check_agreement(f"Add vs float64 {bshape}", y, f64, exact, window, bound)


# ----------------------------------------------------------------- pools

POOL_CASES = [
    # (N, H, W, C, kernel, stride, pads)
    (1, 9, 10, 7, (3, 3), (2, 2), (1, 1, 1, 1)),
    (2, 8, 11, 5, (2, 3), (1, 2), (0, 1, 1, 2)),
    (1, 16, 16, 24, (3, 3), (1, 1), (1, 1, 1, 1)),
    (1, 12, 13, 9, (2, 2), (2, 2), (0, 0, 0, 0)),
]


@pytest.mark.parametrize("case", POOL_CASES)
def test_maxpool_int8_and_qdq(case):
    n, h, w, c, k, s, p = case
    rng = np.random.default_rng(9)
    x = rng.integers(-128, 128, (n, h, w, c), dtype=np.int8)
    y = ops.max_pool(x, k, stride=s, pads=p)
    attrs = dict(kernel_shape=list(k), strides=list(s), pads=list(p))
    (direct,) = run_ort([helper.make_node("MaxPool", ["x"], ["y"], **attrs)],
                        {"x": nchw(x)}, [("y", TensorProto.INT8)], {})
    assert np.array_equal(y, nhwc(direct))
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
             helper.make_node("MaxPool", ["xf"], ["yf"], **attrs),
             helper.make_node("QuantizeLinear", ["yf", "xs", "xz"], ["y"])]
    (qdq,) = run_ort(nodes, {"x": nchw(x)}, [("y", TensorProto.INT8)],
                     dict(xs=f32(0.043), xz=np.array(-17, np.int8)))
    assert np.array_equal(y, nhwc(qdq))
    RATES[f"MaxPool {case}"] = (0.0, int(y.size))


def ref_avg_exact(x, k, s, p, in_q, out_q, include_pad):
    """float64 model: mean of dequantised valid elements, in output LSB (pre-round)."""
    kh, kw = k
    pt, pl, pb, pr = p
    xf = np.pad(x.astype(np.float64) - in_q[1], ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    valid = np.pad(np.ones(x.shape[1:3]), ((pt, pb), (pl, pr)))
    sums = sliding_window_view(xf, k, axis=(1, 2))[:, ::s[0], ::s[1]].sum(axis=(-1, -2))
    cnt = sliding_window_view(valid, k)[::s[0], ::s[1]].sum(axis=(-1, -2))
    if include_pad:
        cnt = np.full_like(cnt, kh * kw)
    return sums * in_q[0] / out_q[0] / cnt[None, :, :, None] + out_q[1], cnt


def avg_expected_rate(cnt, window):
    """Predicted mismatch rate of the contract's average pool vs float.

    t = MBQM(sum) is rounded to an integer (once, error <= 1/2 + 2**-31
    relative) before q = t / n is rounded.  For even n, t / n lands exactly
    on k + 1/2 with probability 1/n and the exact value is then on the other
    side of the tie half of the time: 1/(2n).  For odd n, t / n is never a
    tie and lies >= 1/(2n) from one, so it cannot cross a boundary; what is
    left is the generic 2 * window of boundary hits (ORT's float error).
    """
    cnt = np.asarray(cnt, np.float64)
    tie = np.where(cnt % 2 == 0, 1 / (2 * cnt), 0.0)
    return np.mean(tie) + 2 * np.mean(window - 0.5 / cnt[None, :, :, None])


def avg_window(centred, cnt):
    # MBQM rounds the scaled sum to an integer (<= 1/2 + multiplier error)
    # before the division by n: error <= 1/(2n) + |value| * 2**-31 LSB.
    return 0.5 / cnt[None, :, :, None] + mq_window(centred) + ORT_SLACK


@pytest.mark.parametrize("optimize", [False, True], ids=["float-qdq", "ort-fused"])
@pytest.mark.parametrize("include_pad", [False, True])
@pytest.mark.parametrize("case", POOL_CASES)
def test_avgpool(case, include_pad, optimize):
    n, h, w, c, k, s, p = case
    rng = np.random.default_rng(10)
    x = rng.integers(-128, 128, (n, h, w, c), dtype=np.int8)
    in_q, out_q = (float(f32(0.043)), -17), (float(f32(0.0311)), 6)
    mult, shift = arith.quantize_multiplier(in_q[0] / out_q[0])
    y = ops.avg_pool(x, k, stride=s, pads=p, in_zp=in_q[1], out_zp=out_q[1], multiplier=mult,
                     shift=shift, count_include_pad=include_pad)
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
             helper.make_node("AveragePool", ["xf"], ["yf"], kernel_shape=list(k),
                              strides=list(s), pads=list(p), count_include_pad=int(include_pad)),
             helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["y"])]
    (ref,) = run_ort(nodes, {"x": nchw(x)}, [("y", TensorProto.INT8)],
                     dict(xs=f32(in_q[0]), xz=np.array(in_q[1], np.int8), ys=f32(out_q[0]),
                          yz=np.array(out_q[1], np.int8)), optimize)
    exact, cnt = ref_avg_exact(x, k, s, p, in_q, out_q, include_pad)
    window = avg_window(exact - out_q[1], cnt)
    check_agreement(f"AveragePool {'fused' if optimize else 'float'} {case[:5]} pad={include_pad}",
                    y, nhwc(ref), exact, window,
                    rate_bound(avg_expected_rate(cnt, window), y.size))


def test_avgpool_same_scale_mismatches_are_exact_ties():
    # in_scale == out_scale: MBQM is the identity (M = 2**30, shift 1), so the
    # only difference left is the tie rule: ours half away from zero, ORT half
    # to even.  Every mismatch must be an exact tie resolved away from zero.
    rng = np.random.default_rng(11)
    x = rng.integers(-128, 128, (1, 12, 12, 16), dtype=np.int8)
    q = (float(f32(0.05)), 3)
    mult, shift = arith.quantize_multiplier(1.0)
    y = ops.avg_pool(x, (2, 2), stride=(2, 2), in_zp=q[1], out_zp=q[1], multiplier=mult,
                     shift=shift)
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
             helper.make_node("AveragePool", ["xf"], ["yf"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("QuantizeLinear", ["yf", "xs", "xz"], ["y"])]
    (ref,) = run_ort(nodes, {"x": nchw(x)}, [("y", TensorProto.INT8)],
                     dict(xs=f32(q[0]), xz=np.array(q[1], np.int8)))
    ref = nhwc(ref)
    exact, _ = ref_avg_exact(x, (2, 2), (2, 2), (0, 0, 0, 0), q, q, False)
    diff = y.astype(int) - ref.astype(int)
    mism = diff != 0
    assert np.all(exact[mism] - np.floor(exact[mism]) == 0.5)
    centred = exact[mism] - q[1]
    assert np.all(diff[mism] == np.sign(centred))  # ours is the one away from zero
    # and where ORT's half-even already rounds away from zero, we agree
    ties = (exact - np.floor(exact)) == 0.5
    assert mism.sum() < ties.sum()
    RATES["AveragePool same scale 2x2 (ties)"] = (float(mism.mean()), int(mism.size))


@pytest.mark.parametrize("optimize", [False, True], ids=["float-qdq", "ort-fused"])
@pytest.mark.parametrize("hw", [(7, 7), (5, 9), (1, 1)])
def test_global_avgpool(hw, optimize):
    rng = np.random.default_rng(12)
    x = rng.integers(-128, 128, (3, *hw, 40), dtype=np.int8)
    in_q, out_q = (float(f32(0.0234)), -30), (float(f32(0.0102)), 12)
    mult, shift = arith.quantize_multiplier(in_q[0] / out_q[0])
    y = ops.global_avg_pool(x, in_zp=in_q[1], out_zp=out_q[1], multiplier=mult, shift=shift)
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
             helper.make_node("GlobalAveragePool", ["xf"], ["yf"]),
             helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["y"])]
    (ref,) = run_ort(nodes, {"x": nchw(x)}, [("y", TensorProto.INT8)],
                     dict(xs=f32(in_q[0]), xz=np.array(in_q[1], np.int8), ys=f32(out_q[0]),
                          yz=np.array(out_q[1], np.int8)), optimize)
    exact, cnt = ref_avg_exact(x, hw, (1, 1), (0, 0, 0, 0), in_q, out_q, False)
    window = avg_window(exact - out_q[1], cnt)
    check_agreement(f"GlobalAveragePool {'fused' if optimize else 'float'} {hw}", y, nhwc(ref),
                    exact, window, rate_bound(avg_expected_rate(cnt, window), y.size))
