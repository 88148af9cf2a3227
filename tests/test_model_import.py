"""Our TFLite import on ONNX Runtime against the LiteRT interpreter, output by output."""

import numpy as np
import pytest

from posepipe.models.assets import cache_dir
from posepipe.models.graph import import_tflite
from posepipe.landmarks import sigmoid
from posepipe.models.runtime import load_model
from tests.conftest import sample_image

litert = pytest.importorskip("ai_edge_litert.interpreter")

TOLERANCE = 1e-3
MASK_TOLERANCE = 1 / 510  # a mask probability: half a step of its 8-bit form


def litert_outputs(path, batch_nchw):
    """LiteRT's reference kernels (BUILTIN_REF), one image at a time, back in NCHW."""
    interp = litert.Interpreter(model_path=str(path), experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    outs = interp.get_output_details()
    results = [[] for _ in outs]
    for item in batch_nchw:
        interp.set_tensor(inp, item.transpose(1, 2, 0)[None].copy())
        interp.invoke()
        for slot, o in zip(results, outs):
            slot.append(interp.get_tensor(o["index"]))
    merged = [np.concatenate(s) for s in results]
    return [m.transpose(0, 3, 1, 2) if m.ndim == 4 else m for m in merged]


def inputs_for(size, low, rng):
    real = sample_image("astronaut.png")
    import cv2

    real = cv2.resize(real, (size, size)).transpose(2, 0, 1).astype(np.float32) / 255 * (1 - low) + low
    random = rng.uniform(low, 1, size=(2, 3, size, size)).astype(np.float32)
    return np.concatenate([real[None], random])


@pytest.mark.parametrize("which", ["detector", "landmark"])
def test_outputs_match_litert(model_paths, which):
    path = model_paths[0] if which == "detector" else model_paths[1]
    graph = import_tflite(path)
    model = load_model(path, "onnxruntime", cache_dir())
    batch = inputs_for(graph.input_size[0], -1.0 if which == "detector" else 0.0, np.random.default_rng(0))
    ours = model.run(batch)  # the whole batch at once: dynamic batch dimension
    ref = litert_outputs(path, batch)
    assert len(ours) == len(ref) == len(graph.outputs)
    for name, a, b in zip(graph.outputs, ours, ref):
        assert a.shape == b.shape, name
        if which == "landmark" and name in (graph.outputs[0], graph.outputs[2]):
            # Two landmark outputs have large magnitudes: coordinates in crop pixels (to 256) and
            # segmentation logits (to about 1500). float32 summation order alone moves them by
            # about 1e-3 and 0.35 there: LiteRT's own XNNPACK and reference kernels differ by
            # 4e-3 and 0.35 on these inputs. Coordinates are held to 1e-5 of their magnitude,
            # logits to 5e-4 (LiteRT against itself: 2.6e-4), and the mask the pipeline uses,
            # sigmoid(logits), to half a step of its 8-bit form (see test_training_network).
            relative = 1e-5 if name == graph.outputs[0] else 5e-4
            assert np.abs(a - b).max() <= relative * np.abs(b).max(), (name, float(np.abs(a - b).max()))
            if name == graph.outputs[2]:
                assert np.abs(sigmoid(a) - sigmoid(b)).max() <= MASK_TOLERANCE, name
        else:
            assert np.abs(a - b).max() <= TOLERANCE, (name, float(np.abs(a - b).max()))


def test_graph_is_read_into_our_ops(model_paths):
    det, lm = (import_tflite(p) for p in model_paths)
    assert det.input_shape == (1, 3, 224, 224) and lm.input_shape == (1, 3, 256, 256)
    assert set(det.op_counts()) <= {"conv", "add", "pad", "depth_to_space", "resize", "reshape", "concat"}
    assert lm.output_shapes[lm.outputs[3]] == (1, 39, 64, 64)
    # fp16 (DEQUANTIZE) and sparse (DENSIFY) weights are folded into dense float32 constants.
    assert all(v.dtype in (np.float32, np.int64, np.int32) for v in det.constants.values())
    assert sum(v.size for v in det.constants.values()) > 100_000


def test_not_a_model_is_refused(tmp_path):
    from posepipe.errors import ModelError

    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"hello world, not flatbuffers")
    with pytest.raises(ModelError, match="not a TFLite model"):
        import_tflite(bad)



def operator_count(path) -> int:
    from ai_edge_litert import schema_py_generated as schema

    return schema.Model.GetRootAs(path.read_bytes(), 0).Subgraphs(0).OperatorsLength()


def test_litert_without_the_mask_decoder_keeps_the_other_outputs_bit_for_bit(model_paths, tmp_path):
    from posepipe.models.runtime import LiteRTModel, tflite_for_litert

    path = model_paths[1]
    cut = tflite_for_litert(path, tmp_path, (2,))
    assert tflite_for_litert(path, tmp_path, (2,)) == cut  # cached: cut once
    assert operator_count(cut) < operator_count(path)
    full, pruned = LiteRTModel(path, 1), load_model(path, "litert", tmp_path, 1, drop_outputs=(2,))
    batch = inputs_for(256, 0.0, np.random.default_rng(1))[:2]
    ours, ref = pruned.run(batch), full.run(batch)
    assert ours[2] is None and len(ours) == len(ref)
    for k in (0, 1, 3, 4):  # the same operators on the same weights: not one bit moves
        assert np.array_equal(ours[k], ref[k]), k


def test_litert_file_holds_the_expanded_weights_and_the_same_outputs(model_paths, tmp_path):
    """The detector's float16 and sparse weights stored as the float32 arrays its DENSIFY and
    DEQUANTIZE operators made: those operators are gone, and the outputs do not move a bit,
    on a real picture and on random ones."""
    from posepipe.models.runtime import LiteRTModel, tflite_for_litert

    path = model_paths[0]
    prepared = tflite_for_litert(path, tmp_path)
    assert expander_count(path) > 0 and expander_count(prepared) == 0
    assert operator_count(prepared) == operator_count(path) - expander_count(path)
    original, ours = LiteRTModel(path, 1), load_model(path, "litert", tmp_path, 1)
    batch = inputs_for(224, -1.0, np.random.default_rng(2))
    for got, want in zip(ours.run(batch), original.run(batch)):
        assert np.array_equal(got, want)


def expander_count(path) -> int:
    """The file's DENSIFY and DEQUANTIZE operators (all on constant weights in MediaPipe's files)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    expanders = (schema.BuiltinOperator.DENSIFY, schema.BuiltinOperator.DEQUANTIZE)
    count = 0
    for i in range(graph.OperatorsLength()):
        code = model.OperatorCodes(graph.Operators(i).OpcodeIndex())
        count += max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) in expanders
    return count


def test_litert_file_falls_back_to_the_original(model_paths, tmp_path, monkeypatch):
    """A cache folder that cannot be written leaves the detector as it is (only slower to
    open); weights that cannot be read keep their expanders in the file."""
    from posepipe.models import runtime

    path = model_paths[0]
    unwritable = tmp_path / "file-not-folder"
    unwritable.write_text("")
    assert runtime.tflite_for_litert(path, unwritable) == path

    def unreadable(buffer):
        raise runtime.ModelError("this model uses block-sparse weights, which posepipe cannot read")

    monkeypatch.setattr(runtime, "expanded_weights", unreadable)
    kept = runtime.tflite_for_litert(path, tmp_path / "cache")
    assert kept != path and expander_count(kept) == expander_count(path)
