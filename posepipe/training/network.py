"""The imported BlazePose graph as a trainable PyTorch module, and back to ONNX.

:class:`GraphModule` runs a :class:`~posepipe.graph.Graph` op by op, the way
``runtime.to_onnx`` emits it, with every constant weight (conv kernels and biases) as a
parameter that starts from MediaPipe's trained values or, with ``from_scratch``, from
random initialisation. :meth:`GraphModule.to_graph` writes the trained values back into a
copy of the graph, so export reuses the same ONNX emitter as inference: a trained
``model.onnx`` has the original's inputs and outputs and runs wherever the original runs.

:func:`student_graph` makes the distillation student: the same architecture with some of
its identity-residual blocks left out (a residual block ``y = act(x + f(x))`` becomes
``y = x``), the remaining layers keeping the teacher's weights as a warm start.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from ..graph import Graph, Node, keep_outputs


def _activate(x: torch.Tensor, kind: str | None) -> torch.Tensor:
    if kind is None:
        return x
    if kind == "relu6":
        return F.relu6(x)
    if kind == "relu":
        return F.relu(x)
    if kind == "relu_n1_to_1":
        return x.clamp(-1.0, 1.0)
    if kind == "tanh":
        return torch.tanh(x)
    raise ModelError(f"unknown activation {kind!r}")


def _pad_nchw(x: torch.Tensor, top: int, left: int, bottom: int, right: int, value: float = 0.0) -> torch.Tensor:
    if top == left == bottom == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


class GraphModule(nn.Module):
    """A :class:`Graph` as an ``nn.Module``: ``forward(x)`` returns the graph's outputs in order.

    ``x`` is (B, 3, H, W) float in the range the network takes ([0, 1] for the landmark model).
    ``outputs`` names the outputs ``forward`` computes (default all); the other branches keep
    their weights, unused, and are exported as they are. Training leaves out the segmentation
    decoder this way: there are no mask labels, and it is more than half the work.
    """

    def __init__(self, graph: Graph, from_scratch: bool = False, seed: int = 0, outputs: list[str] | None = None):
        super().__init__()
        self.graph = graph
        self.outputs = list(outputs or graph.outputs)
        self.nodes = keep_outputs(graph, self.outputs).nodes
        # ParameterDict keys may not contain "." and TFLite names do: number them instead.
        self.keys = {name: f"w{i}" for i, name in enumerate(sorted(graph.constants))}
        self.weights = nn.ParameterDict({
            self.keys[name]: nn.Parameter(torch.from_numpy(np.array(value, np.float32)))
            for name, value in graph.constants.items()})
        if from_scratch:
            self.reset_parameters(seed)

    def reset_parameters(self, seed: int = 0) -> None:
        """Random initialisation: He-normal kernels (the network is ReLU6 throughout), zero biases."""
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for node in self.graph.nodes:
                if node.op != "conv":
                    continue
                weight, bias = (self.weights[self.keys[n]] for n in node.inputs[1:3])
                fan_in = weight.shape[1] * weight.shape[2] * weight.shape[3]
                weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
                bias.zero_()

    def _value(self, name: str, values: dict[str, torch.Tensor]) -> torch.Tensor:
        key = self.keys.get(name)
        return self.weights[key] if key is not None else values[name]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values: dict[str, torch.Tensor] = {self.graph.input_name: x}
        for node in self.nodes:
            values[node.output] = self._run(node, [self._value(i, values) for i in node.inputs])
        return tuple(values[name] for name in self.outputs)

    @staticmethod
    def _run(node: Node, ins: list[torch.Tensor]) -> torch.Tensor:
        a = node.attrs
        if node.op == "conv":
            x = _pad_nchw(ins[0], *a["pads"])
            y = F.conv2d(x, ins[1], ins[2], stride=a["stride"], dilation=a["dilation"], groups=a["group"])
            return _activate(y, a["activation"])
        if node.op == "add":
            return _activate(ins[0] + ins[1], a["activation"])
        if node.op == "concat":
            return _activate(torch.cat(ins, dim=a["axis"]), a["activation"])
        if node.op == "pad":
            n0, c0, h0, w0, n1, c1, h1, w1 = a["pads"]
            if n0 or n1:
                raise ModelError("padding the batch dimension is not supported")
            return F.pad(ins[0], (w0, w1, h0, h1, c0, c1))
        if node.op == "max_pool":
            x = _pad_nchw(ins[0], *a["pads"], value=-math.inf)  # SAME pooling ignores the padding
            return F.max_pool2d(x, a["kernel"], a["stride"])
        if node.op == "resize":
            if a["mode"] == "asymmetric":
                raise ModelError("bilinear resize with asymmetric coordinates is not supported in training")
            return F.interpolate(ins[0], size=tuple(a["size"]), mode="bilinear",
                                 align_corners=a["mode"] == "align_corners")
        if node.op == "depth_to_space":  # DCR order: channel = (row offset, column offset, channel)
            b = a["block"]
            n, c, h, w = ins[0].shape
            x = ins[0].reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
            return x.reshape(n, c // (b * b), h * b, w * b)
        if node.op == "reshape":
            x = ins[0].permute(0, 2, 3, 1) if a["nhwc_first"] else ins[0]  # TFLite flattens NHWC
            return x.reshape((x.shape[0],) + tuple(a["shape"][1:]))
        if node.op == "sigmoid":
            return torch.sigmoid(ins[0])
        raise ModelError(f"the op {node.op!r} has no PyTorch translation")

    def to_graph(self) -> Graph:
        """A copy of the graph holding this module's current weights."""
        graph = copy.copy(self.graph)
        graph.constants = {name: self.weights[key].detach().cpu().numpy().astype(np.float32).copy()
                           for name, key in self.keys.items()}
        return graph


def export_onnx(module: GraphModule, path) -> None:
    """Write ``module`` as an ONNX model (opset 17, dynamic batch) with the original's interface."""
    from pathlib import Path

    from ..runtime import _write_model, to_onnx

    _write_model(to_onnx(module.to_graph()), Path(path))  # never half a file at `path`


# --------------------------------------------------------------------------- the student


def residual_blocks(graph: Graph) -> list[tuple[Node, str, list[Node]]]:
    """Identity-residual blocks: (the add node, its skip input, the branch's nodes).

    An ``add`` qualifies when one input is the other's ancestor through a chain used by
    nothing else and the branch keeps the shape (no channel padding or pooling on the skip),
    so that leaving the branch out leaves a valid network.
    """
    producer = {n.output: n for n in graph.nodes}
    consumers: dict[str, int] = {}
    for n in graph.nodes:
        for i in n.inputs:
            consumers[i] = consumers.get(i, 0) + 1
    blocks = []
    for node in graph.nodes:
        if node.op != "add" or len(node.inputs) != 2:
            continue
        for skip, branch_out in (node.inputs, node.inputs[::-1]):
            branch, name = [], branch_out
            while name != skip and name in producer and consumers.get(name, 0) == 1:
                p = producer[name]
                data_inputs = [i for i in p.inputs if i not in graph.constants]
                if p.op not in ("conv", "add") or len(data_inputs) != 1:
                    break
                branch.append(p)
                name = data_inputs[0]
            if name == skip and branch:
                blocks.append((node, skip, branch[::-1]))
                break
    return blocks


def student_graph(graph: Graph) -> Graph:
    """The teacher's graph without its identity-residual blocks: each ``y = act(x + f(x))``
    becomes ``y = x``, so the encoder keeps its resolutions and channels but loses depth.

    A block goes only where that is exact for the rest of the network: the add has no
    activation, or a ReLU6 whose skip input already comes out of a ReLU6 (``relu6(x) == x``).
    The remaining layers keep the teacher's weights, a warm start for distillation.
    """
    producer = {n.output: n for n in graph.nodes}
    drop: set[str] = set()
    rename: dict[str, str] = {}
    for add, skip, branch in residual_blocks(graph):
        source = producer.get(skip)
        exact = add.attrs["activation"] is None or (
            add.attrs["activation"] == "relu6" and source is not None and source.attrs.get("activation") == "relu6")
        if not exact or add.output in graph.outputs:
            continue
        drop.update(n.output for n in branch)
        drop.add(add.output)
        rename[add.output] = rename.get(skip, skip)
    nodes = [Node(n.op, [rename.get(i, i) for i in n.inputs], n.output, dict(n.attrs))
             for n in graph.nodes if n.output not in drop]
    used = {i for n in nodes for i in n.inputs}
    return Graph(graph.input_name, graph.input_shape, list(graph.outputs), dict(graph.output_shapes), nodes,
                 {k: v for k, v in graph.constants.items() if k in used})
