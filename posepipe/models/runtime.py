"""Inference backends behind one small interface: ``model.run(batch) -> list of outputs``.

``batch`` is float32 NCHW, outputs follow ``Graph.outputs`` (4-D ones NCHW). Two backends:

* ``auto`` (default): of ``litert`` and ``onnxruntime``, the faster for this model on this
  machine, measured on first use and cached (``backend_choice``); ``onnxruntime`` where
  ai-edge-litert is missing or the model is an ``.onnx`` file.
* ``onnxruntime``: the imported :class:`~posepipe.models.graph.Graph` emitted as ONNX with
  a dynamic batch dimension. The same file runs on GPUs through ORT's CUDA provider.
* ``litert``: the ``.tflite`` in ai-edge-litert's interpreter (XNNPACK), cut to the outputs
  the caller needs.

A model given as an ``.onnx`` file (a trained landmark model) runs on ONNX Runtime as it is.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import ModelError
from .assets import sha256_of, write_file_atomically
from .graph import Graph, expanded_weights, import_tflite, keep_outputs

BACKENDS = ("auto", "onnxruntime", "litert")
DEVICES = ("cpu", "cuda")  # cuda: ONNX Runtime's CUDA provider (onnxruntime-gpu)
# Bump when the emitted ONNX changes, so cached conversions are rebuilt.
_EMITTER_VERSION = 1


class Model(Protocol):
    input_size: tuple[int, int]
    output_names: list[str]
    # Optional ``channels_last = True``: the runtime reads its input NHWC, so a batch handed to
    # ``run`` (always shaped NCHW) is best laid out that way in memory (LandmarkModel.preprocess).

    def run(self, batch: np.ndarray) -> list[np.ndarray]: ...

    def with_threads(self, threads: int) -> "Model":
        """The same network opened again on ``threads`` threads. Its outputs are bit-identical
        to this one's (``tests/test_core_plan.py``): both runtimes' CPU kernels share a layer's
        outputs out among the threads, never one sum."""
        ...


# --------------------------------------------------------------------------- ONNX emission

def to_onnx(graph: Graph):
    """Emit ``graph`` as an ``onnx.ModelProto`` (opset 17, dynamic batch)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], [numpy_helper.from_array(v, k) for k, v in graph.constants.items()]

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.int64), name))
        return name

    def fused(op_type: str, n, **attrs) -> None:
        """The op itself, then its fused activation (TFLite fuses ReLU & co. into the op)."""
        kind, out = n.attrs["activation"], n.output
        pre = out if kind is None else out + "/pre"
        nodes.append(helper.make_node(op_type, n.inputs, [pre], **attrs))
        if kind == "relu":
            nodes.append(helper.make_node("Relu", [pre], [out]))
        elif kind == "tanh":
            nodes.append(helper.make_node("Tanh", [pre], [out]))
        elif kind is not None:
            lo, hi = (0.0, 6.0) if kind == "relu6" else (-1.0, 1.0)
            inits.append(numpy_helper.from_array(np.float32(lo), out + "/lo"))
            inits.append(numpy_helper.from_array(np.float32(hi), out + "/hi"))
            nodes.append(helper.make_node("Clip", [pre, out + "/lo", out + "/hi"], [out]))

    for n in graph.nodes:
        a, out = n.attrs, n.output
        if n.op == "conv":
            fused("Conv", n, strides=list(a["stride"]), dilations=list(a["dilation"]), pads=list(a["pads"]),
                  group=a["group"])
        elif n.op == "add":
            fused("Add", n)
        elif n.op == "concat":
            fused("Concat", n, axis=a["axis"])
        elif n.op == "pad":
            nodes.append(helper.make_node("Pad", [n.inputs[0], const(out + "/pads", a["pads"])], [out]))
        elif n.op == "max_pool":
            nodes.append(helper.make_node("MaxPool", n.inputs, [out], kernel_shape=list(a["kernel"]),
                                          strides=list(a["stride"]), pads=list(a["pads"])))
        elif n.op == "resize":
            scales = out + "/scales"
            inits.append(numpy_helper.from_array(np.array([1, 1, *a["scale"]], np.float32), scales))
            nodes.append(helper.make_node("Resize", [n.inputs[0], "", scales], [out], mode="linear",
                                          coordinate_transformation_mode=a["mode"]))
        elif n.op == "depth_to_space":
            nodes.append(helper.make_node("DepthToSpace", n.inputs, [out], blocksize=a["block"], mode="DCR"))
        elif n.op == "reshape":
            src = n.inputs[0]
            if a["nhwc_first"]:
                nodes.append(helper.make_node("Transpose", [src], [out + "/nhwc"], perm=[0, 2, 3, 1]))
                src = out + "/nhwc"
            nodes.append(helper.make_node("Reshape", [src, const(out + "/shape", a["shape"])], [out]))
        elif n.op == "sigmoid":
            nodes.append(helper.make_node("Sigmoid", n.inputs, [out]))
        else:
            raise ModelError(f"cannot emit the op {n.op!r} to ONNX")

    _, c, h, w = graph.input_shape
    inputs = [helper.make_tensor_value_info(graph.input_name, TensorProto.FLOAT, ["batch", c, h, w])]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", *graph.output_shapes[name][1:]])
               for name in graph.outputs]
    model = helper.make_model(helper.make_graph(nodes, "posepipe", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 17)], producer_name="posepipe")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _write_model(model, target: Path) -> None:
    """Write ``model`` (an ONNX proto) to ``target``, as ``_write_bytes`` does."""
    _write_bytes(model.SerializeToString(), target)


def _write_bytes(data: bytes, target: Path) -> None:
    """Write ``data`` to ``target`` whole or not at all; ModelError where the cache cannot be written."""
    try:
        write_file_atomically(target, data)
    except OSError as exc:
        raise ModelError(f"cannot write the converted model to {target.parent}: {exc.strerror or exc}") from None


def onnx_path_for(tflite_path: Path, cache_dir: Path, drop_outputs: tuple[int, ...] = ()) -> Path:
    """The cached ONNX conversion of a ``.tflite`` file, converted on first use, without the
    branches that only feed the outputs numbered in ``drop_outputs``."""
    digest = sha256_of(tflite_path)[:16]
    variant = "".join(f"-no{i}" for i in sorted(drop_outputs))
    target = cache_dir / "onnx" / f"{tflite_path.stem}-{digest}-v{_EMITTER_VERSION}{variant}.onnx"
    if target.is_file():
        return target
    graph = import_tflite(tflite_path)
    if drop_outputs:
        graph = keep_outputs(graph, [n for i, n in enumerate(graph.outputs) if i not in drop_outputs])
    _write_model(to_onnx(graph), target)
    return target


def tflite_for_litert(tflite_path: Path, cache_dir: Path, drop_outputs: tuple[int, ...] = ()) -> Path:
    """The ``.tflite`` file LiteRT runs, cached by content: the original without the operators
    that only feed the outputs numbered in ``drop_outputs`` (LiteRT runs every operator of a
    file, needed or not), and with its weights stored as the dense float32 arrays that XNNPACK
    makes of them when it opens the model.

    MediaPipe's files keep their weights as float16, the detector's partly sparse, expanded
    by DENSIFY and DEQUANTIZE operators each time the model is opened: the detector took 30 ms
    to open, 5 ms from this file (one thread, Zen 4). The expansion is exact, and done here
    once, as the ONNX import folds it. The other operators, their weights and their order
    are the original's, so the outputs kept are bit-identical to the original file's. Where
    the cache cannot be written, a file with no outputs to drop runs as it is.
    """
    variant = "".join(f"-no{i}" for i in sorted(drop_outputs))
    target = cache_dir / "tflite" / f"{tflite_path.stem}-{sha256_of(tflite_path)[:16]}{variant}-f32.tflite"
    if target.is_file():
        return target
    from ai_edge_litert import schema_py_generated as schema

    data = tflite_path.read_bytes()
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    if drop_outputs:
        _drop_outputs(model.subgraphs[0], drop_outputs)
    _store_weights_expanded(model, data)
    try:
        _write_bytes(_packed(model, 2 * len(data)), target)
    except ModelError:
        if drop_outputs:
            raise
        return tflite_path  # only slower to open
    return target


def _packed(model, size_hint: int) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(size_hint + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _drop_outputs(graph, drop_outputs: tuple[int, ...]) -> None:
    """Keep the operators that feed the outputs not in ``drop_outputs``, in their order."""
    kept = [t for i, t in enumerate(graph.outputs) if i not in drop_outputs]
    needed, operators = set(kept), []
    for op in reversed(graph.operators):  # operators come in execution order: walk back from the outputs
        if any(t in needed for t in op.outputs):
            operators.append(op)
            needed.update(t for t in op.inputs if t >= 0)
    graph.operators, graph.outputs = operators[::-1], np.array(kept, np.int32)


def _store_weights_expanded(model, data: bytes) -> None:
    """Replace the DENSIFY and DEQUANTIZE operators on constant weights left in ``model`` by
    their results, folded as the ONNX import folds them (``graph.expanded_weights`` on the
    original file ``data``: cutting operators keeps the tensors' numbers); weights it cannot
    read keep their operators."""
    from ai_edge_litert import schema_py_generated as schema

    try:
        expanded = expanded_weights(data)
    except ModelError:
        return
    graph = model.subgraphs[0]
    produced = {op.outputs[0] for op in graph.operators}
    expanded = {index: values for index, values in expanded.items() if index in produced}
    if not expanded:
        return
    for index, values in expanded.items():
        tensor = graph.tensors[index]
        if tensor.type != schema.TensorType.FLOAT32:
            continue  # a densified float16 array, read only by the DEQUANTIZE folded after it
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(np.ascontiguousarray(values, np.float32).tobytes(), np.uint8)
        model.buffers.append(buffer)
        tensor.buffer = len(model.buffers) - 1
    graph.operators = [op for op in graph.operators if op.outputs[0] not in expanded]
    read = {t for op in graph.operators for t in op.inputs if t >= 0} | set(graph.outputs)
    buffers_read = {graph.tensors[t].buffer for t in read}  # a buffer may be shared by several tensors
    for index, tensor in enumerate(graph.tensors):  # the float16 originals nothing reads now
        held = tensor.buffer > 0 and model.buffers[tensor.buffer].data is not None and len(model.buffers[tensor.buffer].data)
        if index not in read and (held or index in expanded):
            if tensor.buffer not in buffers_read:
                model.buffers[tensor.buffer].data = None
            tensor.buffer = 0


# --------------------------------------------------------------------------- ONNX files (trained models)

@dataclass(frozen=True)
class Signature:
    """The tensors a model file must have, batch dimension left out: one NCHW float input and
    its outputs in order."""

    name: str  # what the model is, for messages: "landmark model"
    input_shape: tuple[int, ...]
    output_shapes: tuple[tuple[int, ...], ...]


def is_onnx_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".onnx"


def _dims(value_info) -> tuple:
    """A tensor's dimensions after the batch: ints, or None where the file leaves one free."""
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in dims[1:])


def _shape_text(shape: tuple) -> str:
    return "(batch, " + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def read_onnx(path: Path, signature: Signature | None = None):
    """Load an ``.onnx`` file and check it against ``signature``; a wrong file is one sentence."""
    import onnx
    from onnx import TensorProto

    try:
        model = onnx.load(str(path))
    except Exception:  # noqa: BLE001 - protobuf and external-data errors alike mean "not readable"
        raise ModelError(f"{path} is not a readable ONNX model") from None
    graph = model.graph
    if not graph.node or not graph.output:
        raise ModelError(f"{path} is not an ONNX model (it holds no network)")
    if signature is None:
        return model
    initialized = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialized]
    want_in = _shape_text(signature.input_shape)
    if (len(inputs) != 1 or inputs[0].type.tensor_type.elem_type != TensorProto.FLOAT
            or len(inputs[0].type.tensor_type.shape.dim) != len(signature.input_shape) + 1
            or any(d not in (None, w) for d, w in zip(_dims(inputs[0]), signature.input_shape))):
        got = ", ".join(_shape_text(_dims(i)) for i in inputs) or "none"
        raise ModelError(f"{path} does not take the {signature.name}'s input, one float tensor {want_in} "
                         f"(it takes {got})")
    got_out = [_dims(o) for o in graph.output]
    fits = len(got_out) == len(signature.output_shapes) and all(
        len(g) == len(w) and all(d in (None, x) for d, x in zip(g, w))
        for g, w in zip(got_out, signature.output_shapes))
    if not fits:
        raise ModelError(f"{path} does not have the {signature.name}'s {len(signature.output_shapes)} outputs "
                         f"{', '.join(map(_shape_text, signature.output_shapes))} in that order "
                         f"(it has {', '.join(map(_shape_text, got_out))})")
    return model


def onnx_without_outputs(onnx_file: Path, cache_dir: Path, drop_outputs: tuple[int, ...], model=None) -> Path:
    """An ``.onnx`` file cut down to the outputs not in ``drop_outputs`` (what ``keep_outputs``
    does for an imported graph), cached by the file's content."""
    import onnx.utils

    digest = hashlib.sha256(onnx_file.read_bytes()).hexdigest()[:16]
    variant = "".join(f"-no{i}" for i in sorted(drop_outputs))
    target = cache_dir / "onnx" / f"{onnx_file.stem}-{digest}-cut{variant}.onnx"
    if target.is_file():
        return target
    model = model if model is not None else read_onnx(onnx_file)
    graph = model.graph
    initialized = {t.name for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in initialized]
    keep = [o.name for i, o in enumerate(graph.output) if i not in drop_outputs]
    try:
        cut = onnx.utils.Extractor(model).extract_model(inputs, keep)
    except Exception as exc:  # noqa: BLE001 - an unusual graph: say which file, not where onnx failed
        raise ModelError(f"cannot cut the unused outputs out of {onnx_file}: {str(exc).splitlines()[0]}") from None
    _write_model(cut, target)
    return target


# Int8 weights are stored on a 7-bit grid, -64..64 (ONNX Runtime's ``reduce_range``). On x86
# CPUs without VNNI (AVX2, and AVX-512 before Cascade Lake) ONNX Runtime's uint8 × int8 kernels
# multiply with vpmaddubsw, which adds pairs of products in int16 and saturates: 2 × 255 × 127
# overflows 32767, 2 × 255 × 64 = 32640 does not. With full-range weights MediaPipe's model
# moved its landmarks a median 27.9 crop pixels from float under an emulated Haswell and 5.8
# on a VNNI CPU; with 7-bit weights 7.3 on both, the same outputs bit for bit, at the same
# speed (bench/int8_schemes.py). uint8 weights (no saturation either) ran no faster than float.
WEIGHT_BOUND = 64


@dataclass
class Int8Ranges:
    """What int8 quantisation does to a network: the activation tensors it quantises, each
    with its (scale, zero point) in uint8, and the weights it stores in int8 (per output
    channel, symmetric on -``weight_bound``..``weight_bound``: scale = max |w| / weight_bound).
    Training simulates exactly these (``GraphModule.simulate_int8``), and export quantises
    with them."""

    activations: dict[str, tuple[float, int]]
    weights: list[str]
    weight_bound: int = WEIGHT_BOUND

    @classmethod
    def of_model(cls, model) -> "Int8Ranges":
        """The ranges of a quantised (QDQ) model (a path or a loaded ``onnx.ModelProto``), by
        its float tensors' names."""
        import onnx
        from onnx import numpy_helper

        model = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
        constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        activations, weights, bound = {}, [], 0
        for node in model.graph.node:
            if node.op_type == "QuantizeLinear":  # an output's float tensor is renamed "<name>_QuantizeLinear_Input"
                name = node.input[0].removesuffix("_QuantizeLinear_Input")
                activations[name] = (float(constants[node.input[1]]), int(constants[node.input[2]]))
            elif node.op_type == "DequantizeLinear" and constants.get(node.input[0], np.zeros(0)).dtype == np.int8:
                weights.append(node.input[0].removesuffix("_quantized"))
                bound = max(bound, int(np.abs(constants[node.input[0]].astype(np.int32)).max()))
        return cls(activations, weights, bound or WEIGHT_BOUND)

    def to_json(self) -> dict:
        return {"activations": {k: list(v) for k, v in self.activations.items()}, "weights": self.weights,
                "weight_bound": self.weight_bound}

    @classmethod
    def from_json(cls, data: dict) -> "Int8Ranges":
        # files written before the 7-bit grid have no "weight_bound": their weights were full range
        return cls({k: (float(s), int(z)) for k, (s, z) in data["activations"].items()}, list(data["weights"]),
                   int(data.get("weight_bound", 127)))


def quantize_int8(onnx_file: Path, target: Path, calibration: np.ndarray, ranges: Int8Ranges | None = None) -> Int8Ranges:
    """Write ``onnx_file`` quantised to int8 (QDQ: per-channel int8 weights on the 7-bit grid
    of ``WEIGHT_BOUND``, uint8 activations with ranges from ``calibration``, a batch of typical
    inputs, or the given ``ranges``), the same inputs and outputs in float; return the ranges
    used. The model computes the same on every x86 CPU, with or without VNNI (see
    ``WEIGHT_BOUND``).

    The stem, the convolutions before the first 1×1, stays in float: ONNX Runtime's int8
    kernels are slower than its float ones on 3 input channels and on the narrow depthwise
    conv at 128×128 (273 and 240 µs against 144 and 110 µs); so kept, MediaPipe's full model
    runs 1.42× faster than in float instead of 1.34× (no mask decoder, 2 cores with VNNI).
    Calibrated activation ranges are the 0.001–99.999 percentiles of the calibration values,
    not their extremes: a pruned student lost 0.04 of held-out PCK@0.1 to int8 with min–max
    ranges and 0.016 with percentiles. ``ranges`` fixes them instead: a network trained with
    int8 simulated (quantisation-aware) is exported with the ranges it was trained with."""
    if ranges is not None and ranges.weight_bound != WEIGHT_BOUND:
        raise ValueError(f"int8 weights are quantised on -{WEIGHT_BOUND}..{WEIGHT_BOUND}, these ranges were made "
                         f"for -{ranges.weight_bound}..{ranges.weight_bound}")
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = onnx.load(str(onnx_file), load_external_data=False).graph.input[0].name

    class Crops(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{name: calibration[i:i + 1].astype(np.float32)} for i in range(len(calibration))])

        def get_next(self):
            return next(self.batches, None)

    overrides = {} if ranges is None else {
        tensor: [{"scale": np.array(scale, np.float32), "zero_point": np.array(zero, np.uint8)}]
        for tensor, (scale, zero) in ranges.activations.items()}
    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(onnx_file), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        kernels = {i.name: list(i.dims[2:]) for i in model.graph.initializer}
        stem = []
        for index, node in enumerate(model.graph.node):
            node.name = node.name or f"{node.op_type}_{index}"  # the quantiser excludes nodes by name
        for node in (n for n in model.graph.node if n.op_type == "Conv"):
            if kernels[node.input[1]] == [1, 1]:
                break
            stem.append(node.name)
        onnx.save(model, str(prepared))
        quantize_static(str(prepared), str(quantized), Crops(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=stem,
                        reduce_range=True,  # weights on -64..64: WEIGHT_BOUND
                        # with fixed ranges the calibration is overridden: the plain one, that
                        # never fails on a constant tensor the way percentile histograms can
                        calibrate_method=CalibrationMethod.Percentile if ranges is None else CalibrationMethod.MinMax,
                        extra_options={"TensorQuantOverrides": overrides})
        model = onnx.load(str(quantized))
        _write_model(model, target)
    return Int8Ranges.of_model(model)


# --------------------------------------------------------------------------- backends

_cuda_libraries_loaded = False


def check_device(device: str, backend: str) -> None:
    """A ModelError for a device that is unknown, or that the backend cannot run on."""
    if device not in DEVICES:
        raise ModelError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "cuda" and backend == "litert":
        raise ModelError("the litert backend runs on the CPU only; use device cuda with the onnxruntime "
                         "(or auto) backend")


def check_cuda_provider() -> None:
    """A ModelError where this ONNX Runtime has no CUDA provider (the plain onnxruntime package)."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise ModelError("device 'cuda' needs onnxruntime-gpu, which is not installed (pip install 'posepipe[gpu]' "
                         "in an environment without the plain onnxruntime package; see docs/batch.md, GPU)")


def cuda_provider() -> str:
    """The name of ONNX Runtime's CUDA provider, once its CUDA and cuDNN libraries are loaded."""
    global _cuda_libraries_loaded
    import onnxruntime as ort

    check_cuda_provider()
    if not _cuda_libraries_loaded and hasattr(ort, "preload_dlls"):
        # onnxruntime-gpu's [cuda,cudnn] extra installs CUDA and cuDNN as Python packages, which the
        # provider finds only once preloaded; where they are missing this looks in the system's
        # library paths (ORT >= 1.21).
        ort.preload_dlls()
        _cuda_libraries_loaded = True
    return "CUDAExecutionProvider"


class OnnxRuntimeModel:
    """An ONNX model in an ONNX Runtime session (CPU, or CUDA where ORT has it)."""

    def __init__(self, onnx_path: str | Path, threads: int = 0, device: str = "cpu", dropped: tuple[int, ...] = ()):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Workers spin between the ops of a run (waking a sleeping one costs more than most
        # ops here) but stop when the run ends: otherwise they hold the cores that decoding and
        # cropping need between frames. Video tracking on 2 cores: 96 frames/s spinning as ORT
        # does by default, 115 never spinning, 134 spinning only within a run.
        opts.add_session_config_entry("session.force_spinning_stop", "1")
        opts.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        check_device(device, "onnxruntime")
        if device == "cuda":
            providers.insert(0, cuda_provider())
        try:
            self.session = ort.InferenceSession(str(onnx_path), opts, providers=providers)
        except Exception as exc:
            raise ModelError(f"ONNX Runtime cannot load {onnx_path}: {str(exc).splitlines()[0]}") from None
        if device == "cuda" and "CUDAExecutionProvider" not in self.session.get_providers():
            # ORT falls back to the CPU with a logged warning when its CUDA library cannot start;
            # a user who asked for the GPU is told instead.
            raise ModelError("device 'cuda': ONNX Runtime could not start its CUDA provider (no NVIDIA GPU here, "
                             "or the CUDA and cuDNN libraries its build needs are missing; see docs/batch.md, GPU)")
        self._opened_with = (onnx_path, device, tuple(dropped))
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_size = (int(inp.shape[2]), int(inp.shape[3]))
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.dropped = sorted(dropped)

    def run(self, batch: np.ndarray) -> list[np.ndarray | None]:
        """The outputs in the original model's order; a dropped output is None."""
        outputs = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})
        for i in self.dropped:
            outputs.insert(i, None)
        return outputs

    def with_threads(self, threads: int) -> "OnnxRuntimeModel":
        path, device, dropped = self._opened_with
        return OnnxRuntimeModel(path, threads, device, dropped)


class LiteRTModel:
    """A ``.tflite`` in ai-edge-litert's interpreter (XNNPACK on CPU); ``dropped``: the original
    model's outputs the file was cut without (``tflite_for_litert``), given back as None."""

    channels_last = True  # its input is NHWC: a batch laid out so copies straight in (LandmarkModel.preprocess)

    def __init__(self, tflite_path: str | Path, threads: int = 0, dropped: tuple[int, ...] = ()):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ModelError("the 'litert' backend needs ai-edge-litert, which is not installed here") from None
        self.interpreter = Interpreter(model_path=str(tflite_path), num_threads=threads or os.cpu_count() or 1)
        self.interpreter.allocate_tensors()
        self._opened_with = (tflite_path, tuple(dropped))
        inp = self.interpreter.get_input_details()[0]
        self.input_index = inp["index"]
        self.input_size = (int(inp["shape"][1]), int(inp["shape"][2]))
        self.outputs = self.interpreter.get_output_details()
        self.output_names = [o["name"] for o in self.outputs]
        self.dropped = sorted(dropped)

    def run(self, batch: np.ndarray) -> list[np.ndarray | None]:
        """The outputs in the original model's order; a dropped output is None."""
        runs = []
        for item in np.asarray(batch, np.float32):
            # NCHW -> NHWC straight into the interpreter's input (set_tensor would copy a copy), a
            # plain copy when the batch's memory is channels last; the view is gone before
            # invoke, as LiteRT requires.
            self.interpreter.tensor(self.input_index)()[0] = item.transpose(1, 2, 0)
            self.interpreter.invoke()
            runs.append([self.interpreter.get_tensor(out["index"]) for out in self.outputs])  # copies
        merged = runs[0] if len(runs) == 1 else [np.concatenate(slot) for slot in zip(*runs)]
        outputs = [m.transpose(0, 3, 1, 2) if m.ndim == 4 else m for m in merged]
        for i in self.dropped:
            outputs.insert(i, None)
        return outputs

    def with_threads(self, threads: int) -> "LiteRTModel":
        path, dropped = self._opened_with
        return LiteRTModel(path, threads, dropped)


def litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def _check_tflite(path: Path) -> None:
    """A ModelError naming the file, before a runtime fails on it with its own words."""
    try:
        with open(path, "rb") as f:
            header = f.read(8)
    except OSError as exc:
        raise ModelError(f"cannot read the model {path}: {exc.strerror or exc}") from None
    if header[4:8] != b"TFL3":  # the flatbuffer file identifier of every TFLite model
        raise ModelError(f"{path} is not a TFLite model (nor an ONNX one)")


def load_model(model_path: str | Path, backend: str, cache_dir: Path, threads: int = 0,
               onnx_path: str | Path | None = None, drop_outputs: tuple[int, ...] = (),
               signature: Signature | None = None, device: str = "cpu") -> Model:
    """Open a model for inference: a ``.tflite`` (imported, or run by LiteRT) or an ``.onnx``
    file (a trained model; ONNX Runtime only). ``onnx_path`` overrides the converted file.

    ``drop_outputs``: outputs the caller does not need. Either runtime then runs a network
    without the branches that compute them.
    ``signature``: the tensors an ``.onnx`` file must have, checked before it runs.
    ``device``: ``cuda`` runs the model on ONNX Runtime's CUDA provider (``auto`` is then
    ONNX Runtime: LiteRT runs on the CPU only).
    """
    model_path = Path(model_path)
    onnx_file = Path(onnx_path) if onnx_path else model_path if is_onnx_file(model_path) else None
    if not onnx_file:
        _check_tflite(model_path)
    check_device(device, backend)
    if backend == "auto":
        if device == "cuda" or onnx_file or not litert_available():
            backend = "onnxruntime"
        else:
            # Which runtime is faster depends on the CPU, the threads and the model (without
            # its mask decoder the landmark model is another network): measured
            # here on first use, cached per machine (backend_choice).
            from .backend_choice import choice_key, choose

            key = choice_key(sha256_of(model_path), drop_outputs, threads, extra={"emitter": _EMITTER_VERSION})
            return choose(model_path, drop_outputs, threads, cache_dir,
                          lambda name: load_model(model_path, name, cache_dir, threads, drop_outputs=drop_outputs),
                          key).model
    if onnx_file and backend == "litert" and is_onnx_file(model_path):
        raise ModelError(f"the litert backend runs .tflite files only; run the ONNX model {model_path} "
                         "with the onnxruntime (or auto) backend")
    if backend == "onnxruntime":
        if onnx_file:
            proto = read_onnx(onnx_file, signature)
            if drop_outputs:
                cut = onnx_without_outputs(onnx_file, cache_dir, drop_outputs, proto)
                return OnnxRuntimeModel(cut, threads, device, dropped=drop_outputs)
            return OnnxRuntimeModel(onnx_file, threads, device)
        return OnnxRuntimeModel(onnx_path_for(model_path, cache_dir, drop_outputs), threads, device,
                                dropped=drop_outputs)
    if backend == "litert":
        return LiteRTModel(tflite_for_litert(model_path, cache_dir, drop_outputs), threads, dropped=drop_outputs)
    raise ModelError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
