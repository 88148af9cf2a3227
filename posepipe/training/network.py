"""The imported BlazePose graph as a trainable PyTorch module, and back to ONNX.

:class:`GraphModule` runs a :class:`~posepipe.models.graph.Graph` op by op, the way
``runtime.to_onnx`` emits it, with every constant weight (conv kernels and biases) as a
parameter that starts from MediaPipe's trained values or, with ``from_scratch``, from
random initialisation. :meth:`GraphModule.to_graph` writes the trained values back into a
copy of the graph, so export reuses the same ONNX emitter as inference: a trained
``model.onnx`` has the original's inputs and outputs and runs wherever the original runs.

:func:`student_graph` makes the distillation student: the same architecture with fewer
channels in its stem (width pruning), the kept weights the teacher's, as a warm start,
trained with int8 simulated (:meth:`GraphModule.simulate_int8`);
:func:`residual_stream_taps` names the inner tensors the student is held to.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from ..models.graph import Graph, Node, keep_outputs


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
        self.int8 = None

    def simulate_int8(self, ranges) -> "GraphModule":
        """Run as ONNX Runtime runs the network quantised with ``ranges``
        (:class:`~posepipe.models.runtime.Int8Ranges`): each quantised tensor rounded to its uint8
        grid, each quantised kernel per output channel to the integers -``weight_bound``..
        ``weight_bound`` (the 7-bit grid ``quantize_int8`` stores); gradients pass the rounding
        unchanged (straight-through). Training so is quantisation-aware: the weights learn to
        work through the rounding that int8 inference adds."""
        self.int8 = ranges
        return self

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
        if key is None:
            return values[name]
        weight = self.weights[key]
        if self.int8 is not None and name in self.int8.weights:
            # as ONNX Runtime's quantiser: scale = max |w| / bound per output channel (exact in
            # float32: bound is a power of two), levels = round(w / scale) in float64, half to even
            bound = self.int8.weight_bound
            scale = weight.detach().abs().amax(dim=tuple(range(1, weight.dim())), keepdim=True).clamp_min(1e-12) / bound
            levels = torch.round(weight.detach().double() / scale.double()).clamp(-bound, bound)
            weight = weight + (levels.to(weight.dtype) * scale - weight).detach()  # gradients pass straight through
        return weight

    def _rounded(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if self.int8 is None or name not in self.int8.activations:
            return x
        scale, zero = self.int8.activations[name]
        return torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, 255)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.run(x)[0]

    def run(self, x: torch.Tensor, taps: list[str] = ()) -> tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
        """The outputs, and the inner tensors named in ``taps`` (for feature distillation)."""
        values: dict[str, torch.Tensor] = {self.graph.input_name: self._rounded(self.graph.input_name, x)}
        for node in self.nodes:
            values[node.output] = self._rounded(node.output, self._run(node, [self._value(i, values) for i in node.inputs]))
        return tuple(values[name] for name in self.outputs), {name: values[name] for name in taps}

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

    from ..models.runtime import _write_model, to_onnx

    _write_model(to_onnx(module.to_graph()), Path(path))  # never half a file at `path`


# --------------------------------------------------------------------------- the student


@dataclass
class ChannelGroup:
    """Channels that can go together: the outputs of ``expand`` (a full convolution), the
    ``depthwise`` convs that filter them one by one, and the ``consumers`` that sum them.

    BlazePose's stem (3×3 conv → depthwise → 1×1) has one, group 0, and so does every
    inverted-residual block (1×1 expansion → depthwise → projection); these channels never
    reach the residual stream, so removing some keeps every other shape."""

    expand: Node
    depthwise: list[Node]
    consumers: list[Node]


def channel_groups(graph: Graph) -> list[ChannelGroup]:
    """The graph's prunable groups, in network order."""
    consumers: dict[str, list[Node]] = {}
    for node in graph.nodes:
        for name in node.inputs:
            consumers.setdefault(name, []).append(node)
    is_depthwise = lambda n: n.op == "conv" and n.attrs["group"] > 1 and graph.constants[n.inputs[1]].shape[1] == 1  # noqa: E731
    groups = []
    for expand in graph.nodes:
        if expand.op != "conv" or expand.attrs["group"] != 1 or expand.output in graph.outputs:
            continue
        depthwise, sums, ok = [], [], True
        pending = list(consumers.get(expand.output, []))
        while pending and ok:
            node = pending.pop()
            if node.op == "pad" and not (node.attrs["pads"][1] or node.attrs["pads"][5]):  # no channel padding
                pending.extend(consumers.get(node.output, []))
            elif is_depthwise(node) and node.output not in graph.outputs:
                depthwise.append(node)
                after = consumers.get(node.output, [])
                ok = all(n.op == "conv" and n.attrs["group"] == 1 for n in after)
                sums.extend(after)
            else:
                ok = False
        if ok and depthwise:
            groups.append(ChannelGroup(expand, depthwise, sums))
    return groups


# Share of each prunable group's channels the student keeps, by group (the others keep all):
# the stem's 24 to 16. It is the one group that runs in float (see quantize_int8), and the
# only one whose pruning left the tracked street video's held-out frames as the teacher
# scores them (PCK@0.1 0.925 against 0.928, float, untrained). A tenth of every group's
# channels took 0.06 off, and three quarters in the three blocks at 128×128 and 64×64, or in
# the three at 8×8, lost the track for frames at a time.
STUDENT_SHARES = {0: 2 / 3}
CHANNEL_MULTIPLE = 16  # ONNX Runtime's blocked (NCHWc) kernels work in 16-channel blocks with AVX-512


def _pruned(graph: Graph, groups: list[ChannelGroup], shares: list[float], stats: dict) -> Graph:
    """``graph`` keeping ``share`` of each group's channels, those that move the consumers'
    sums most (``std(channel) × |consumer weights|``); a removed channel is replaced by its
    mean, folded into the consumers' biases."""
    constants = dict(graph.constants)
    nodes = [Node(n.op, list(n.inputs), n.output, dict(n.attrs)) for n in graph.nodes]
    by_output = {n.output: n for n in nodes}
    for group, share in zip(groups, shares):
        channels = constants[group.expand.inputs[1]].shape[0]
        count = min(channels, max(CHANNEL_MULTIPLE, round(channels * share / CHANNEL_MULTIPLE) * CHANNEL_MULTIPLE))
        sums = [(d, c) for d in group.depthwise for c in group.consumers if c.inputs[0] == d.output]
        score = sum(stats[d.output][1] * np.abs(constants[c.inputs[1]].sum((2, 3))).sum(0) for d, c in sums)
        kept = np.sort(np.argsort(-score, kind="stable")[:count])
        dropped = np.setdiff1d(np.arange(channels), kept)
        for name in group.expand.inputs[1:3] + [n for d in group.depthwise for n in d.inputs[1:3]]:
            constants[name] = constants[name][kept]
        for d in group.depthwise:
            by_output[d.output].attrs["group"] = count
        for d, c in sums:
            weight = constants[c.inputs[1]]
            constants[c.inputs[2]] = (constants[c.inputs[2]]
                                      + weight[:, dropped].sum((2, 3)) @ stats[d.output][0][dropped]).astype(np.float32)
            constants[c.inputs[1]] = np.ascontiguousarray(weight[:, kept])
    return Graph(graph.input_name, graph.input_shape, list(graph.outputs), dict(graph.output_shapes), nodes, constants)


def student_graph(graph: Graph, images: torch.Tensor, batch: int = 32,
                  shares: dict[int, float] = STUDENT_SHARES) -> Graph:
    """The distillation student: the teacher with some of its groups' channels removed
    (``shares``). Same inputs, outputs, depth and residual stream; quantised to int8
    (:func:`posepipe.models.runtime.quantize_int8`) about 1.5× faster than the float teacher.

    ``images`` ((N, 3, H, W) in [0, 1]) rank the channels, block by block: each block's are
    ranked on the activations of the student pruned so far, so a block makes up for what the
    blocks before it lost. Crops from varied scenes matter more than their number: on the
    held-out COCO people, 85 % of every block's channels ranked on one street video's crops
    scored PCK@0.1 0.64 untrained, ranked on those plus a few augmented photos 0.81.
    """
    student = graph
    for index in sorted(shares):
        groups = channel_groups(student)
        names = [d.output for d in groups[index].depthwise]
        module = GraphModule(student, outputs=names).eval()
        with torch.no_grad():
            values = [torch.cat(v) for v in zip(*(module(images[i:i + batch]) for i in range(0, len(images), batch)))]
        stats = {name: (v.mean((0, 2, 3)).double().numpy(), v.std((0, 2, 3)).double().numpy())
                 for name, v in zip(names, values)}
        student = _pruned(student, [groups[index]], [shares[index]], stats)
    return student


def residual_stream_taps(graph: Graph) -> list[str]:
    """Where the student is held to the teacher's features: after each pruned group's
    consumer, on the residual stream (the block's add) where there is one. These tensors
    keep the teacher's shape, so the teacher's values are targets for every layer at once."""
    adds = {i: n.output for n in graph.nodes if n.op == "add" for i in n.inputs}
    return list(dict.fromkeys(adds.get(c.output, c.output) for g in channel_groups(graph) for c in g.consumers))
