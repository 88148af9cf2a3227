"""The landmark graph as a PyTorch module: same outputs as ONNX Runtime, trainable, exportable."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs the 'train' extra (torch)")

from posepipe.models.assets import cache_dir  # noqa: E402
from posepipe.models.graph import import_tflite  # noqa: E402
from posepipe.landmarks import sigmoid  # noqa: E402
from posepipe.models.runtime import Int8Ranges, OnnxRuntimeModel, load_model, quantize_int8  # noqa: E402
from posepipe.training.network import (  # noqa: E402
    CHANNEL_MULTIPLE, STUDENT_SHARES, GraphModule, _pruned, channel_groups, export_onnx, residual_stream_taps, student_graph)
from tests.test_model_import import inputs_for  # noqa: E402

TOLERANCE = 1e-3
# The mask is a probability per pixel, used and stored at 8 bits (MediaPipe's masks, trace
# PNGs: mask × 255): it is held to half a step of that, 1/510. Its float32 error is no
# property of the network alone: the decoder's logits run to about 2000, and ONNX Runtime's
# float32 mask is 9.5e-4 from the float64 one with AVX-512 kernels, 1.01e-3 with AVX2 ones
# (a Zen 3, and qemu-x86_64 -cpu Haswell alike) on test_export_round_trip's model.
MASK_TOLERANCE = 1 / 510


@pytest.fixture(scope="module")
def landmark_graph(model_paths):
    return import_tflite(model_paths[1])


def decoded(outputs):
    """The outputs in the units the pipeline consumes them: crop-normalised coordinates and
    probabilities (raw coordinates run to 256 pixels and mask logits to about 2000, where
    float32 summation order alone moves the last digits; see test_model_import)."""
    raw, flag, mask, heatmaps, world = (np.asarray(o, np.float64) for o in outputs)
    values = raw.reshape(len(raw), 39, 5)
    return {"coordinates": values[..., :3] / 256, "visibility_presence": sigmoid(values[..., 3:]), "flag": flag,
            "mask": sigmoid(mask), "heatmaps": heatmaps, "world": world}


def test_module_matches_onnxruntime(model_paths, landmark_graph):
    """float32, as training runs it: every output but the mask within 1e-3 (of the crop for
    coordinates, of a probability, of a heatmap value, or a millimetre of world landmarks).
    The mask decoder (not trained: there are no mask labels) is ill-conditioned in float32:
    its logits run to about 2000 and ONNX Runtime's own mask is about 1e-3 from the float64
    result, PyTorch's oneDNN kernels 1.9e-3. So the module's mask is computed in float64
    and held to ``MASK_TOLERANCE``."""
    batch = inputs_for(256, 0.0, np.random.default_rng(0))
    assert_same_outputs(GraphModule(landmark_graph), load_model(model_paths[1], "onnxruntime", cache_dir()), batch)


def assert_same_outputs(module, onnx_model, batch):
    expected = decoded(onnx_model.run(batch))
    module = module.eval()
    with torch.no_grad():
        single = decoded([o.numpy() for o in module(torch.from_numpy(batch))])
        double = decoded([o.numpy() for o in module.double()(torch.from_numpy(batch).double())])
    module.float()
    for name in expected:
        ours = double if name == "mask" else single
        assert ours[name].shape == expected[name].shape
        difference = float(np.abs(ours[name] - expected[name]).max())
        assert difference <= (MASK_TOLERANCE if name == "mask" else TOLERANCE), (name, difference)


def test_training_subset_skips_the_mask_decoder(landmark_graph):
    full = GraphModule(landmark_graph)
    no_mask = [n for i, n in enumerate(landmark_graph.outputs) if i != 2]
    trained = GraphModule(landmark_graph, outputs=no_mask)
    mask_producer = landmark_graph.outputs[2]
    assert any(n.output == mask_producer for n in full.nodes)
    assert not any(n.output == mask_producer for n in trained.nodes) and len(trained.nodes) < len(full.nodes)
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        a, b = full(x), trained(x)
    assert all(torch.allclose(u, v) for u, v in zip([a[i] for i in (0, 1, 3, 4)], b))
    assert trained.to_graph().outputs == landmark_graph.outputs  # export keeps the whole network


def test_from_scratch_is_random_and_trainable(landmark_graph):
    pretrained, scratch = GraphModule(landmark_graph), GraphModule(landmark_graph, from_scratch=True, seed=1)
    again = GraphModule(landmark_graph, from_scratch=True, seed=1)
    key = next(iter(scratch.weights))
    assert not torch.equal(pretrained.weights[key], scratch.weights[key])
    assert all(torch.equal(scratch.weights[k], again.weights[k]) for k in scratch.weights)  # seeded
    x = torch.rand(2, 3, 256, 256)
    outputs = scratch(x)
    sum(o.square().mean() for o in outputs).backward()
    grads = [p.grad for p in scratch.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


def test_export_round_trip(tmp_path, landmark_graph):
    module = GraphModule(landmark_graph)
    with torch.no_grad():  # a "trained" change: every weight moves a little
        for p in module.parameters():
            p.mul_(1.01)
    path = tmp_path / "model.onnx"
    export_onnx(module, path)
    batch = np.random.default_rng(2).uniform(0, 1, (2, 3, 256, 256)).astype(np.float32)
    assert_same_outputs(module, OnnxRuntimeModel(path), batch)
    # and it is the trained network, not the original
    original = GraphModule(landmark_graph).eval()
    with torch.no_grad():
        assert not torch.allclose(original(torch.from_numpy(batch))[0], module(torch.from_numpy(batch))[0])


def test_student_is_the_teacher_with_fewer_channels_where_it_is_told(landmark_graph):
    images = torch.rand(3, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    student = student_graph(landmark_graph, images)
    assert student.outputs == landmark_graph.outputs
    assert [n.output for n in student.nodes] == [n.output for n in landmark_graph.nodes]  # same depth
    teacher_groups, student_groups = channel_groups(landmark_graph), channel_groups(student)
    assert len(teacher_groups) == len(student_groups) >= 10
    widths = [(landmark_graph.constants[t.expand.inputs[1]].shape[0], student.constants[s.expand.inputs[1]].shape[0])
              for t, s in zip(teacher_groups, student_groups)]
    assert STUDENT_SHARES
    for index, (t, s) in enumerate(widths):
        if index in STUDENT_SHARES:
            assert s % CHANNEL_MULTIPLE == 0 and s < t and abs(s - t * STUDENT_SHARES[index]) <= CHANNEL_MULTIPLE / 2
        else:
            assert s == t
    # every tensor the student is held to keeps the teacher's shape
    taps = residual_stream_taps(student)
    feeds = {i: n.output for n in student.nodes if n.op == "add" for i in n.inputs}
    assert all(c.output in taps or feeds.get(c.output) in taps for g in student_groups for c in g.consumers)
    batch = torch.rand(2, 3, 256, 256)
    with torch.no_grad():
        student_out, student_taps = GraphModule(student).eval().run(batch, taps)
        teacher_out, teacher_taps = GraphModule(landmark_graph).eval().run(batch, taps)
    assert [o.shape for o in student_out] == [o.shape for o in teacher_out]
    assert all(student_taps[t].shape == teacher_taps[t].shape for t in taps)
    assert sum(v.size for v in student.constants.values()) < sum(v.size for v in landmark_graph.constants.values())


def test_pruning_keeps_the_channels_it_is_told_to(landmark_graph):
    """Keeping every channel (whatever the statistics say) is the teacher itself."""
    groups = channel_groups(landmark_graph)
    stats = {d.output: (np.zeros(landmark_graph.constants[d.inputs[1]].shape[0]),
                        np.ones(landmark_graph.constants[d.inputs[1]].shape[0])) for g in groups for d in g.depthwise}
    same = _pruned(landmark_graph, groups, [1.0] * len(groups), stats)
    batch = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        for a, b in zip(GraphModule(same).eval()(batch), GraphModule(landmark_graph).eval()(batch)):
            assert torch.equal(a, b)


def test_a_removed_channel_is_replaced_by_its_mean(landmark_graph):
    """Halving one block: its projection's output keeps the teacher's mean over the images
    the statistics came from (the removed channels' means are folded into the bias), while
    the values themselves move."""
    group = channel_groups(landmark_graph)[2]
    depthwise, projection = group.depthwise[0], group.consumers[0]
    images = torch.rand(4, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, values = GraphModule(landmark_graph).eval().run(images, [depthwise.output, projection.output])
        stats = {depthwise.output: (values[depthwise.output].mean((0, 2, 3)).double().numpy(),
                                    values[depthwise.output].std((0, 2, 3)).double().numpy())}
        pruned = _pruned(landmark_graph, [group], [0.5], stats)
        _, after = GraphModule(pruned).eval().run(images, [projection.output])
    before, now = values[projection.output], after[projection.output]
    assert pruned.constants[group.expand.inputs[1]].shape[0] < landmark_graph.constants[group.expand.inputs[1]].shape[0]
    assert not torch.allclose(now, before, atol=1e-2)
    scale = before.abs().mean()
    assert torch.allclose(now.mean((0, 2, 3)), before.mean((0, 2, 3)), atol=1e-4 * float(scale) + 1e-5)


def test_int8_simulation_rounds_as_the_quantised_model_does(tmp_path, landmark_graph):
    """Quantisation-aware training runs the ranges ONNX Runtime's int8 model uses: each
    quantised tensor lands on its uint8 grid, each quantised kernel is the int8 model's own
    (7-bit grid, -64..64), and an export with fixed ranges keeps them whatever the
    calibration crops."""
    import onnx
    from onnx import numpy_helper

    from posepipe.landmarks import MASK_OUTPUT
    from posepipe.models.runtime import WEIGHT_BOUND

    outputs = [n for i, n in enumerate(landmark_graph.outputs) if i != MASK_OUTPUT]
    module = GraphModule(landmark_graph, outputs=outputs).eval()
    export_onnx(module, tmp_path / "model.onnx")
    rng = np.random.default_rng(3)
    calibration = rng.uniform(0, 1, (3, 3, 256, 256)).astype(np.float32)
    ranges = quantize_int8(tmp_path / "model.onnx", tmp_path / "calibrated.onnx", calibration)
    assert len(ranges.activations) > 100 and len(ranges.weights) > 80 and ranges.weight_bound == WEIGHT_BOUND == 64
    assert ranges == Int8Ranges.of_model(tmp_path / "calibrated.onnx")
    assert Int8Ranges.from_json(ranges.to_json()) == ranges
    other = rng.uniform(0, 0.5, (2, 3, 256, 256)).astype(np.float32)  # other crops, other percentiles
    assert quantize_int8(tmp_path / "model.onnx", tmp_path / "fixed.onnx", other, ranges) == ranges

    # the simulated kernels are the int8 model's, exactly: scale = max |w| / 64 is a power-of-two
    # division, exact in float32 on both sides
    quantised = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "fixed.onnx")).graph.initializer}
    module.simulate_int8(ranges)
    with torch.no_grad():
        for name in ranges.weights:
            levels, scale = quantised[name + "_quantized"], quantised[name + "_scale"]
            assert levels.dtype == np.int8 and np.abs(levels.astype(np.int32)).max() <= WEIGHT_BOUND
            dequantised = levels.astype(np.float32) * scale.reshape((-1,) + (1,) * (levels.ndim - 1))
            np.testing.assert_array_equal(module._value(name, {}).numpy(), dequantised, err_msg=name)
    module.simulate_int8(None)

    inner = [n for n in ranges.activations if n in {node.output for node in module.nodes}][:40]
    batch = torch.from_numpy(calibration[:2])
    with torch.no_grad():
        float_out, float_taps = module.run(batch, inner)
        module.simulate_int8(ranges)
        int8_out, int8_taps = module.run(batch, inner)
    for name in inner:
        scale, zero = ranges.activations[name]
        levels = int8_taps[name].double() / scale + zero
        assert torch.allclose(levels, levels.round(), atol=1e-3) and levels.min() >= -1e-3 and levels.max() <= 255 + 1e-3
        assert not torch.equal(int8_taps[name], float_taps[name])
    # The simulation computes ONNX Runtime's int8 network: on the same grids, differing only
    # where float32 sums (the simulation) and int32 ones (ONNX Runtime) fall on either side of
    # a rounding step. So its landmarks are nearer ONNX Runtime's int8 ones than those are to
    # float, by more than half (raw coordinates, crop pixels). The int8 model computes the
    # same on every x86 CPU (tests/test_int8_cpus.py), so this holds on every one.
    int8_model = OnnxRuntimeModel(tmp_path / "fixed.onnx")
    ort_raw = np.concatenate([int8_model.run(calibration[i:i + 1])[0] for i in range(2)]).reshape(2, 39, 5)[..., :2]
    sim_raw, ref_raw = (o.reshape(2, 39, 5)[..., :2].numpy() for o in (int8_out[0], float_out[0]))
    distance = lambda a, b: float(np.median(np.linalg.norm(a - b, axis=2)))  # noqa: E731
    ort_shift, sim_shift, sim_to_ort = distance(ort_raw, ref_raw), distance(sim_raw, ref_raw), distance(sim_raw, ort_raw)
    print(f"landmarks from float: int8 {ort_shift:.2f} px, simulated {sim_shift:.2f} px; simulated from int8 "
          f"{sim_to_ort:.2f} px")
    assert ort_shift > 0 and sim_shift > 0
    assert sim_to_ort < 0.5 * ort_shift
