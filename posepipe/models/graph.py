"""The project's own representation of a BlazePose network, read from a ``.tflite`` file.

A :class:`Graph` is a list of :class:`Node` in execution order over named tensors, with
constant weights as float32 numpy arrays. Feature maps are NCHW (the TFLite file is NHWC):
both ONNX Runtime and PyTorch want channels first, so the layout is converted once, here,
and every backend emitter (``runtime.to_onnx``, the PyTorch module of the training extra)
is a direct, one-op-to-one-call translation.

Ops, with ONNX-like semantics:

=============  ======================================================================
conv           ``x, weight[O, I/group, kh, kw], bias`` · stride, dilation, pads
               (top, left, bottom, right), group, activation
add            ``a, b`` · activation
pad            ``x`` · pads (NCHW begins then ends, ONNX order), zero fill
max_pool       ``x`` · kernel, stride, pads
resize         ``x`` · size (h, w), scale, coordinate mode (align_corners | half_pixel |
               asymmetric), bilinear
depth_to_space ``x`` · block (DCR order, the order TFLite uses)
concat         ``*xs`` · axis, activation
reshape        ``x`` · shape (batch dim left free), nhwc_first (go back to TFLite's
               NHWC element order before reshaping, as TFLite flattens NHWC)
sigmoid        ``x``
=============  ======================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError

ACTIVATIONS = (None, "relu", "relu6", "relu_n1_to_1", "tanh")


@dataclass
class Node:
    op: str
    inputs: list[str]
    output: str
    attrs: dict = field(default_factory=dict)


@dataclass
class Graph:
    """A feed-forward network: one image input (NCHW float32), named outputs."""

    input_name: str
    input_shape: tuple[int, int, int, int]  # (1, C, H, W)
    outputs: list[str]
    output_shapes: dict[str, tuple[int, ...]]  # per output, batch dim first
    nodes: list[Node]
    constants: dict[str, np.ndarray]

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the image the network takes."""
        return self.input_shape[2], self.input_shape[3]

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return counts


def keep_outputs(graph: Graph, names: list[str]) -> Graph:
    """The sub-network that computes only ``names``: unused branches and their weights go.

    BlazePose's segmentation decoder is more than half of the landmark model's work; without
    masks, leaving it out halves the cost of every frame.
    """
    producer = {node.output: node for node in graph.nodes}
    needed, pending = set(), list(names)
    while pending:
        node = producer.get(pending.pop())
        if node is not None and node.output not in needed:
            needed.add(node.output)
            pending.extend(node.inputs)
    nodes = [n for n in graph.nodes if n.output in needed]
    used = {i for n in nodes for i in n.inputs}
    return Graph(graph.input_name, graph.input_shape, list(names),
                 {k: graph.output_shapes[k] for k in names if k in graph.output_shapes},  # inner tensors have none
                 nodes, {k: v for k, v in graph.constants.items() if k in used})


# --------------------------------------------------------------------------- TFLite reading

_FLOAT32, _FLOAT16, _INT32, _UINT8, _INT64, _INT8 = 0, 1, 2, 3, 4, 9
_NUMPY_TYPES = {_FLOAT32: np.float32, _FLOAT16: np.float16, _INT32: np.int32, _UINT8: np.uint8,
                _INT64: np.int64, _INT8: np.int8}
_ACTIVATION_CODES = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh"}


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding: the extra pixel, if any, goes at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _densify(shape, sparsity) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (coordinates, value positions) for a TFLite sparse tensor.

    Walks the dimension levels breadth-first, vectorised: each level expands every
    current position into its children, either all ``dense_size`` of them or the CSR
    range ``segments[p]:segments[p+1]`` with coordinates from ``indices``.
    """
    import tflite

    if not sparsity.BlockMapIsNone() and sparsity.BlockMapLength() > 0:
        raise ModelError("this model uses block-sparse weights, which posepipe cannot read")
    order = sparsity.TraversalOrderAsNumpy()
    positions = np.zeros(1, dtype=np.int64)
    coords = np.zeros((len(shape), 1), dtype=np.int64)
    for level in range(sparsity.DimMetadataLength()):
        meta = sparsity.DimMetadata(level)
        dim = int(order[level])
        if meta.Format() == tflite.DimensionType.DENSE:
            size = meta.DenseSize()
            child = np.arange(size)
            positions = (positions[:, None] * size + child[None, :]).reshape(-1)
            coords = np.repeat(coords, size, axis=1)
            coords[dim] = np.tile(child, coords.shape[1] // size)
        else:
            segments = _index_vector(meta.ArraySegments(), meta.ArraySegmentsType())
            indices = _index_vector(meta.ArrayIndices(), meta.ArrayIndicesType())
            starts, ends = segments[positions], segments[positions + 1]
            counts = ends - starts
            parent = np.repeat(np.arange(len(positions)), counts)
            new_positions = starts[parent] + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
            coords = coords[:, parent]
            coords[dim] = indices[new_positions]
            positions = new_positions
    return coords, positions


def _index_vector(table, kind) -> np.ndarray:
    import tflite

    vector_types = {tflite.SparseIndexVector.Int32Vector: tflite.Int32Vector,
                    tflite.SparseIndexVector.Uint16Vector: tflite.Uint16Vector,
                    tflite.SparseIndexVector.Uint8Vector: tflite.Uint8Vector}
    vector = vector_types[kind]()
    vector.Init(table.Bytes, table.Pos)
    return vector.ValuesAsNumpy().astype(np.int64)


class _TfliteReader:
    """Turns one TFLite subgraph into a :class:`Graph`, folding DEQUANTIZE and DENSIFY."""

    def __init__(self, buffer: bytes):
        import tflite

        self.tfl = tflite
        self.model = tflite.Model.GetRootAsModel(buffer, 0)
        if self.model.SubgraphsLength() != 1:
            raise ModelError("the model has several subgraphs; posepipe reads single-graph BlazePose models")
        self.sub = self.model.Subgraphs(0)
        self.op_names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        self.constants: dict[str, np.ndarray] = {}
        self.nodes: list[Node] = []
        self.layout: dict[str, str] = {}  # tensor name -> "nchw" for 4-D feature maps, "flat" otherwise

    def name(self, index: int) -> str:
        return self.sub.Tensors(index).Name().decode()

    def shape(self, index: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.sub.Tensors(index).ShapeAsNumpy())

    def raw_constant(self, index: int) -> np.ndarray | None:
        tensor = self.sub.Tensors(index)
        buf = self.model.Buffers(tensor.Buffer())
        if buf is None or buf.DataLength() == 0:
            return None
        dtype = _NUMPY_TYPES.get(tensor.Type())
        if dtype is None:
            raise ModelError(f"tensor {tensor.Name().decode()!r} has an unsupported type {tensor.Type()}")
        data = np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=dtype)
        if tensor.Sparsity() is None:
            return data.reshape(self.shape(index))
        return data  # sparse values; DENSIFY gives them their shape

    def constant(self, index: int) -> np.ndarray:
        name = self.name(index)
        if name not in self.constants:
            value = self.raw_constant(index)
            if value is None:
                raise ModelError(f"expected weights in tensor {name!r}, found none")
            self.constants[name] = value.astype(np.float32) if value.dtype == np.float16 else value
        return self.constants[name]

    def is_constant(self, index: int) -> bool:
        return self.name(index) in self.constants or self.raw_constant(index) is not None

    def read(self) -> Graph:
        sub = self.sub
        if sub.InputsLength() != 1:
            raise ModelError("expected a model with exactly one image input")
        in_index = sub.Inputs(0)
        in_shape = self.shape(in_index)
        if len(in_shape) != 4 or in_shape[3] != 3:
            raise ModelError(f"expected an NHWC RGB image input, found shape {in_shape}")
        input_name = self.name(in_index)
        self.layout[input_name] = "nchw"
        for i in range(sub.OperatorsLength()):
            self.convert(sub.Operators(i))
        outputs = [self.name(sub.Outputs(i)) for i in range(sub.OutputsLength())]
        output_shapes = {}
        for i, name in enumerate(outputs):
            shape = self.shape(sub.Outputs(i))
            if self.layout.get(name) == "nchw":
                shape = (shape[0], shape[3], shape[1], shape[2])
            output_shapes[name] = shape
        used = {n for node in self.nodes for n in node.inputs}
        constants = {k: v for k, v in self.constants.items() if k in used}
        return Graph(input_name, (1, 3, in_shape[1], in_shape[2]), outputs, output_shapes,
                     self.nodes, constants)

    def convert(self, op) -> None:
        code = self.model.OperatorCodes(op.OpcodeIndex())
        kind = self.op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        ins = [int(i) for i in op.InputsAsNumpy()]
        out = int(op.OutputsAsNumpy()[0])
        out_name = self.name(out)
        handler = getattr(self, "op_" + kind.lower(), None)
        if handler is None:
            raise ModelError(f"the model uses the operator {kind}, which posepipe does not support")
        handler(op, ins, out, out_name)

    def options(self, op, cls):
        table = op.BuiltinOptions()
        opts = cls()
        opts.Init(table.Bytes, table.Pos)
        return opts

    def emit(self, op: str, inputs: list[str], output: str, layout: str, **attrs) -> None:
        self.nodes.append(Node(op, inputs, output, attrs))
        self.layout[output] = layout

    # Folded at import: weights are stored fp16 (DEQUANTIZE) and sparse (DENSIFY).
    def op_dequantize(self, op, ins, out, out_name):
        if not self.is_constant(ins[0]):
            raise ModelError("the model dequantizes activations at run time; only fp16 weights are supported")
        self.constants[out_name] = self.constant(ins[0]).astype(np.float32)

    def op_densify(self, op, ins, out, out_name):
        tensor = self.sub.Tensors(ins[0])
        values = self.raw_constant(ins[0])
        shape = self.shape(out)
        coords, positions = _densify(shape, tensor.Sparsity())
        dense = np.zeros(shape, dtype=values.dtype)
        dense[tuple(coords)] = values[positions]
        self.constants[out_name] = dense

    def _conv_common(self, opts, x_index, kh, kw):
        _, h, w, _ = self.shape(x_index)
        sh, sw = opts.StrideH(), opts.StrideW()
        dh, dw = opts.DilationHFactor(), opts.DilationWFactor()
        if opts.Padding() == self.tfl.Padding.SAME:
            top, bottom = _same_pads(h, kh, sh, dh)
            left, right = _same_pads(w, kw, sw, dw)
        else:
            top = bottom = left = right = 0
        return dict(stride=(sh, sw), dilation=(dh, dw), pads=(top, left, bottom, right),
                    activation=_ACTIVATION_CODES[opts.FusedActivationFunction()])

    def _bias(self, ins, channels, out_name):
        if len(ins) > 2 and ins[2] >= 0:
            return self.name(ins[2]), self.constant(ins[2])
        name = out_name + "/zero_bias"
        self.constants[name] = np.zeros(channels, np.float32)
        return name, self.constants[name]

    def op_conv_2d(self, op, ins, out, out_name):
        opts = self.options(op, self.tfl.Conv2DOptions)
        weight = self.constant(ins[1])  # [O, kh, kw, I]
        o, kh, kw, _ = weight.shape
        wname = out_name + "/weight"
        self.constants[wname] = np.ascontiguousarray(weight.transpose(0, 3, 1, 2))
        bname, _ = self._bias(ins, o, out_name)
        self.emit("conv", [self.name(ins[0]), wname, bname], out_name, "nchw", group=1,
                  **self._conv_common(opts, ins[0], kh, kw))

    def op_depthwise_conv_2d(self, op, ins, out, out_name):
        opts = self.options(op, self.tfl.DepthwiseConv2DOptions)
        weight = self.constant(ins[1])  # [1, kh, kw, C * multiplier]
        _, kh, kw, oc = weight.shape
        channels = self.shape(ins[0])[3]
        wname = out_name + "/weight"
        self.constants[wname] = np.ascontiguousarray(weight.transpose(3, 0, 1, 2))  # [O, 1, kh, kw]
        bname, _ = self._bias(ins, oc, out_name)
        self.emit("conv", [self.name(ins[0]), wname, bname], out_name, "nchw", group=channels,
                  **self._conv_common(opts, ins[0], kh, kw))

    def _operand(self, index: int, layout: str) -> str:
        """Name of an operand; a constant operand of a 4-D (NCHW) op is moved to NCHW."""
        name = self.name(index)
        if name in self.layout or not self.is_constant(index):
            return name
        value = self.constant(index)
        if layout != "nchw":
            return name
        if value.ndim == 4:
            value = value.transpose(0, 3, 1, 2)
        elif value.ndim == 3:
            value = value.transpose(2, 0, 1)
        elif value.ndim == 1:
            value = value.reshape(-1, 1, 1)
        self.constants[name + "/nchw"] = np.ascontiguousarray(value, np.float32)
        return name + "/nchw"

    def op_add(self, op, ins, out, out_name):
        opts = self.options(op, self.tfl.AddOptions)
        layout = "nchw" if len(self.shape(out)) == 4 else "flat"
        self.emit("add", [self._operand(i, layout) for i in ins], out_name, layout,
                  activation=_ACTIVATION_CODES[opts.FusedActivationFunction()])

    def op_pad(self, op, ins, out, out_name):
        pads = self.constant(ins[1]).astype(np.int64)  # [[b0, e0], ...] in NHWC
        if len(pads) != 4:
            raise ModelError("PAD on a tensor that is not 4-D is not supported")
        nchw = pads[[0, 3, 1, 2]]
        self.emit("pad", [self.name(ins[0])], out_name, "nchw",
                  pads=tuple(int(v) for v in list(nchw[:, 0]) + list(nchw[:, 1])))

    def op_max_pool_2d(self, op, ins, out, out_name):
        opts = self.options(op, self.tfl.Pool2DOptions)
        kh, kw = opts.FilterHeight(), opts.FilterWidth()
        _, h, w, _ = self.shape(ins[0])
        sh, sw = opts.StrideH(), opts.StrideW()
        if opts.Padding() == self.tfl.Padding.SAME:
            top, bottom = _same_pads(h, kh, sh, 1)
            left, right = _same_pads(w, kw, sw, 1)
        else:
            top = bottom = left = right = 0
        if opts.FusedActivationFunction():
            raise ModelError("a fused activation on MAX_POOL_2D is not supported")
        self.emit("max_pool", [self.name(ins[0])], out_name, "nchw", kernel=(kh, kw), stride=(sh, sw),
                  pads=(top, left, bottom, right))

    def op_resize_bilinear(self, op, ins, out, out_name):
        opts = self.options(op, self.tfl.ResizeBilinearOptions)
        mode = "align_corners" if opts.AlignCorners() else "half_pixel" if opts.HalfPixelCenters() else "asymmetric"
        _, h, w, _ = self.shape(out)
        _, in_h, in_w, _ = self.shape(ins[0])
        self.emit("resize", [self.name(ins[0])], out_name, "nchw", size=(h, w), scale=(h / in_h, w / in_w),
                  mode=mode)

    def op_depth_to_space(self, op, ins, out, out_name):
        opts = self.options(op, self.tfl.DepthToSpaceOptions)
        self.emit("depth_to_space", [self.name(ins[0])], out_name, "nchw", block=opts.BlockSize())

    def op_concatenation(self, op, ins, out, out_name):
        opts = self.options(op, self.tfl.ConcatenationOptions)
        rank = len(self.shape(out))
        axis = opts.Axis() % rank
        layout = "nchw" if rank == 4 and all(self.layout.get(self.name(i)) == "nchw" for i in ins) else "flat"
        if rank == 4 and layout != "nchw":
            raise ModelError("CONCATENATION of 4-D tensors in mixed layouts is not supported")
        if layout == "nchw":
            axis = {0: 0, 1: 2, 2: 3, 3: 1}[axis]
        self.emit("concat", [self.name(i) for i in ins], out_name, layout, axis=axis,
                  activation=_ACTIVATION_CODES[opts.FusedActivationFunction()])

    def op_reshape(self, op, ins, out, out_name):
        shape = self.shape(out)
        self.emit("reshape", [self.name(ins[0])], out_name, "flat", shape=(0,) + tuple(shape[1:]),
                  nhwc_first=self.layout.get(self.name(ins[0])) == "nchw")

    def op_logistic(self, op, ins, out, out_name):
        self.emit("sigmoid", [self.name(ins[0])], out_name, self.layout.get(self.name(ins[0]), "flat"))


def expanded_weights(buffer: bytes) -> dict[int, np.ndarray]:
    """The arrays the DEQUANTIZE and DENSIFY operators on constant weights of a ``.tflite``
    make (float32, or float16 where a DENSIFY feeds a DEQUANTIZE), by their output tensor's
    index: the folding :func:`import_tflite` does, for a file LiteRT then runs without those
    operators (``runtime.tflite_for_litert``). ModelError where the weights cannot be read
    (block-sparse ones)."""
    reader = _TfliteReader(buffer)
    expanders = {"DEQUANTIZE": reader.op_dequantize, "DENSIFY": reader.op_densify}
    found = {}
    for i in range(reader.sub.OperatorsLength()):
        op = reader.sub.Operators(i)
        code = reader.model.OperatorCodes(op.OpcodeIndex())
        fold = expanders.get(reader.op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode())))
        ins, out = [int(t) for t in op.InputsAsNumpy()], int(op.OutputsAsNumpy()[0])
        if fold is not None and reader.is_constant(ins[0]):
            fold(op, ins, out, reader.name(out))
            found[out] = reader.constants[reader.name(out)]
    return found


def import_tflite(path: str | Path) -> Graph:
    """Read a BlazePose-family ``.tflite`` model into a :class:`Graph`."""
    path = Path(path)
    try:
        buffer = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read the model file {path}: {exc.strerror or exc}") from None
    if len(buffer) < 8 or buffer[4:8] != b"TFL3":
        raise ModelError(f"{path} is not a TFLite model file")
    try:
        return _TfliteReader(buffer).read()
    except ModelError:
        raise
    except Exception as exc:  # a malformed flatbuffer fails deep inside the reader
        raise ModelError(f"cannot read the TFLite model {path}: {exc}") from None
