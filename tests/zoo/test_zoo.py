"""The benchmark model zoo: every model builds, checks, infers, runs, and is what it says."""

from __future__ import annotations

import argparse

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper, shape_inference

from presil.host import zoo
from presil.host.zoo import cli

NAMES = ["resnet8", "dscnn", "mobilenet_v1_025_vww", "autoencoder_ad", "resnet50_v1_5",
         "ssd_mobilenet_v1", "digits_cnn"]


@pytest.fixture(scope="module")
def models() -> dict[str, onnx.ModelProto]:
    return {n: zoo.build(n) for n in NAMES}


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _graph_macs(model: onnx.ModelProto) -> int:
    """Conv/Gemm MACs counted from the ONNX graph alone (shape inference + weight shapes)."""
    inferred = shape_inference.infer_shapes(model, strict_mode=True)
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)}
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    macs = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            cout_hw = int(np.prod(shapes[node.output[0]]))
            _, cpg, kh, kw = weights[node.input[1]]
            macs += cout_hw * cpg * kh * kw
        elif node.op_type in ("Gemm", "MatMul"):
            m, n = shapes[node.output[0]]
            macs += m * n * int(np.prod(weights[node.input[1]])) // n
    return macs


def test_registry_lists_every_model():
    infos = zoo.list_models()
    assert [m.name for m in infos] == NAMES == zoo.model_names()
    for m in infos:
        assert m.task and m.source and m.input_name
        assert m.weights == ("trained" if m.name == "digits_cnn" else "seeded")
        assert m.macs > 0 and m.params > 0
        assert all(d > 0 for d in m.input_shape) and m.input_shape[0] == 1
    assert "post-processing" in zoo.info("ssd_mobilenet_v1").notes


@pytest.mark.parametrize("name", NAMES)
def test_builds_checks_infers_and_runs(models, name):
    model, info = models[name], zoo.info(name)
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain: o.version for o in model.opset_import}[""] == 17
    inferred = shape_inference.infer_shapes(model, strict_mode=True)
    out_shapes = {o.name: tuple(d.dim_value for d in o.type.tensor_type.shape.dim) for o in inferred.graph.output}
    assert tuple(out_shapes[n] for n in info.output_names) == info.output_shapes
    # static shapes everywhere: every intermediate tensor has a fully known shape
    for vi in inferred.graph.value_info:
        assert all(d.HasField("dim_value") for d in vi.type.tensor_type.shape.dim), vi.name
    # FP32: every float tensor is float32 (Reshape's shape operand is int64 by definition)
    for t in model.graph.initializer:
        assert t.data_type in (TensorProto.FLOAT, TensorProto.INT64), t.name

    sess = _session(model)
    (inp,) = sess.get_inputs()
    assert inp.name == info.input_name and tuple(inp.shape) == info.input_shape
    x = np.random.default_rng(1).random(info.input_shape, dtype=np.float32)
    outs = sess.run(list(info.output_names), {inp.name: x})
    assert tuple(o.shape for o in outs) == info.output_shapes
    assert all(np.isfinite(o).all() for o in outs)


@pytest.mark.parametrize("name", NAMES)
def test_macs_match_graph_count(models, name):
    assert zoo.info(name).macs == _graph_macs(models[name])


def test_resnet8_macs_by_hand():
    hw = {1: 32 * 32, 2: 16 * 16, 3: 8 * 8}
    macs = hw[1] * 16 * 3 * 9  # stem
    macs += 2 * hw[1] * 16 * 16 * 9  # stack 1
    macs += hw[2] * 32 * (16 * 9 + 32 * 9 + 16)  # stack 2: two 3x3 + 1x1 projection
    macs += hw[3] * 64 * (32 * 9 + 64 * 9 + 32)  # stack 3
    macs += 64 * 10  # FC
    assert zoo.info("resnet8").macs == macs == 12_501_632


def test_resnet50_matches_published_size(models):
    info = zoo.info("resnet50_v1_5")
    assert abs(info.macs - 4.1e9) / 4.1e9 < 0.03, info.macs  # "4.1 GMAC"
    assert info.params == 25_557_032  # the published 1000-class ResNet-50 parameter count
    # v1.5: the stride-2 of a downsampling bottleneck is on the 3x3 conv
    nodes = {n.name: n for n in models["resnet50_v1_5"].graph.node}
    strides = lambda n: list(helper.get_attribute_value(next(a for a in n.attribute if a.name == "strides")))
    assert strides(nodes["layer3.0/conv1"]) == [1, 1] and strides(nodes["layer3.0/conv2"]) == [2, 2]


def test_published_structure_details(models):
    ops = lambda n: [node.op_type for node in models[n].graph.node]
    for n in ("resnet8", "dscnn", "mobilenet_v1_025_vww", "resnet50_v1_5", "autoencoder_ad", "ssd_mobilenet_v1"):
        assert "BatchNormalization" in ops(n), n
    assert ops("resnet50_v1_5").count("BatchNormalization") == 53
    assert ops("resnet50_v1_5").count("Add") == 16
    assert ops("resnet8").count("Add") == 3
    assert ops("ssd_mobilenet_v1").count("Clip") == 35  # ReLU6 everywhere in the backbone + extras
    assert ops("autoencoder_ad").count("Gemm") == 10
    # DS-CNN: four depthwise (group = 64) convs
    assert sum(1 for n in models["dscnn"].graph.node for a in n.attribute if a.name == "group" and a.i == 64) == 4
    anchors = sum(h * w * a for (h, w), a in zip([(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)],
                                                  [3, 6, 6, 6, 6, 6]))
    assert zoo.info("ssd_mobilenet_v1").output_shapes == ((1, anchors, 4), (1, anchors, 91)) and anchors == 1917


def test_seeded_builds_are_deterministic():
    a, b, c = zoo.build("resnet8", 0), zoo.build("resnet8", 0), zoo.build("resnet8", 1)
    assert a.SerializeToString() == b.SerializeToString()
    wa = numpy_helper.to_array(a.graph.initializer[0])
    wc = numpy_helper.to_array(c.graph.initializer[0])
    assert not np.array_equal(wa, wc)


def _with_intermediates(model: onnx.ModelProto, ops=("Relu", "Clip", "Add", "Gemm")):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    outs = {o.name for o in m.graph.output}
    names = [n.output[0] for n in m.graph.node if n.op_type in ops and n.output[0] not in outs]
    for t in names:
        m.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    return m, names


@pytest.mark.parametrize("name", ["resnet50_v1_5", "ssd_mobilenet_v1", "mobilenet_v1_025_vww", "resnet8", "dscnn",
                                  "autoencoder_ad"])
def test_activations_neither_explode_nor_vanish(models, name):
    model, names = _with_intermediates(models[name])
    info = zoo.info(name)
    x = np.random.default_rng(7).standard_normal(info.input_shape).astype(np.float32)
    sess = _session(model)
    res = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {info.input_name: x})))
    stds = {t: float(res[t].std()) for t in names}
    bad = {t: s for t, s in stds.items() if not (np.isfinite(res[t]).all() and 0.05 < s < 20)}
    assert not bad, bad
    if name == "resnet50_v1_5":
        logits = res["fc/out"]
        assert np.isfinite(logits).all() and logits.std() > 0.1 and len(np.unique(logits)) > 900
        print(f"\nresnet50 logits std {logits.std():.3f}, activation std range "
              f"{min(stds.values()):.3f}..{max(stds.values()):.3f}")


def test_unknown_model_error_lists_names(tmp_path):
    with pytest.raises(zoo.UnknownModelError, match="resnet8.*digits_cnn"):
        zoo.build("resnet9")
    zoo.export("dscnn", tmp_path / "k.onnx")
    onnx.checker.check_model(str(tmp_path / "k.onnx"), full_check=True)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="presil")
    cli.register(ap.add_subparsers(dest="command"))
    return ap


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


def test_cli_list(capsys):
    assert _run(["models", "list"]) == 0
    out = capsys.readouterr().out
    for n in NAMES:
        assert n in out
    assert "4.09G" in out and "1x3x224x224" in out


def test_cli_export(tmp_path, capsys):
    path = tmp_path / "ae.onnx"
    assert _run(["models", "export", "autoencoder_ad", "-o", str(path)]) == 0
    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    assert m.SerializeToString() == zoo.build("autoencoder_ad").SerializeToString()


def test_cli_export_unknown_name(tmp_path, capsys):
    assert _run(["models", "export", "lenet", "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'lenet'" in err and all(n in err for n in NAMES)
    assert not (tmp_path / "x.onnx").exists()
