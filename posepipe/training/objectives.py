"""What training minimises and what it reports: the landmark loss, the distillation loss, PCK.

The network's outputs (``GraphModule`` without the mask decoder): ``raw`` (B, 195) = 39 × (x,
y, z in crop pixels, visibility logit, presence logit), ``flag`` (B, 1) pose presence in
[0, 1], ``heatmaps`` (B, 39, 64, 64) logits, ``world`` (B, 117) metres.

Supervised loss, over the labelled landmarks of each crop (weights from the dataset):

* coordinates: L1 between predicted and labelled x, y in crop units (1 = the crop's side);
* heatmap: binary cross-entropy against a Gaussian (sigma 1.5 cells) at the label, because
  inference moves each landmark to its heatmap's local mean (``refine_with_heatmap``), so
  the heatmap has to follow the coordinates;
* visibility: cross-entropy against the label's visibility, where it is known;
* presence: cross-entropy against "the landmark is inside the crop".

Accuracy is PCK: the share of labelled landmarks whose error is below ``t`` times the
person's size, with the size rule of ``labels.person_size`` (the larger side of the
person's box), here measured in crop units. ``t`` = 0.05 and 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

NUM_BODY = 33
HEATMAP_SIGMA = 1.5  # heatmap cells (4 crop pixels each)
PCK_THRESHOLDS = (0.05, 0.1)


@dataclass
class Outputs:
    coordinates: torch.Tensor  # (B, 39, 3) crop units
    visibility: torch.Tensor  # (B, 39) logits
    presence: torch.Tensor  # (B, 39) logits
    flag: torch.Tensor  # (B, 1) probability
    heatmaps: torch.Tensor  # (B, 39, H, W) logits
    world: torch.Tensor  # (B, 117)

    @classmethod
    def from_network(cls, outputs: tuple[torch.Tensor, ...], input_size: int = 256) -> "Outputs":
        raw, flag, heatmaps, world = outputs
        values = raw.reshape(raw.shape[0], -1, 5)
        return cls(values[..., :3] / input_size, values[..., 3], values[..., 4], flag, heatmaps, world)


def gaussian_heatmaps(points: torch.Tensor, height: int, width: int, sigma: float = HEATMAP_SIGMA) -> torch.Tensor:
    """(B, K, 2) crop-unit points → (B, K, H, W) Gaussians peaking at 1 on each point.

    Cell ``c`` covers [c, c + 1) / W of the crop, as ``refine_with_heatmap`` reads it."""
    cols = (torch.arange(width, dtype=points.dtype, device=points.device) + 0.5) / width
    rows = (torch.arange(height, dtype=points.dtype, device=points.device) + 0.5) / height
    dx = (cols[None, None, None, :] - points[..., 0, None, None]) * width
    dy = (rows[None, None, :, None] - points[..., 1, None, None]) * height
    return torch.exp(-(dx.square() + dy.square()) / (2 * sigma * sigma))


def _weighted_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


def supervised_loss(out: Outputs, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Loss terms against labels; ``total`` is their sum."""
    target, weight = batch["keypoints"], batch["weight"]
    xy = out.coordinates[:, :NUM_BODY, :2]
    coordinates = _weighted_mean((xy - target).abs().sum(-1), weight)
    h, w = out.heatmaps.shape[2:]
    heat_target = gaussian_heatmaps(target, h, w)
    heat = F.binary_cross_entropy_with_logits(out.heatmaps[:, :NUM_BODY], heat_target, reduction="none").mean((2, 3))
    heatmap = _weighted_mean(heat, weight)
    visibility = _weighted_mean(F.binary_cross_entropy_with_logits(
        out.visibility[:, :NUM_BODY], batch["visibility"], reduction="none"), batch["visibility_weight"])
    inside = ((target >= 0) & (target <= 1)).all(-1).to(target.dtype)
    presence = _weighted_mean(F.binary_cross_entropy_with_logits(out.presence[:, :NUM_BODY], inside, reduction="none"),
                              weight)
    terms = {"coordinates": coordinates, "heatmap": 10.0 * heatmap, "visibility": 0.1 * visibility,
             "presence": 0.1 * presence}
    terms["total"] = sum(terms.values())
    return terms


def distillation_loss(student: Outputs, teacher: Outputs, student_features: dict[str, torch.Tensor] | None = None,
                      teacher_features: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The student copies every output the pipeline uses: all 39 landmarks (the two auxiliary
    ones steer tracking), visibility and presence, the heatmaps, the pose flag and the world
    landmarks. Soft targets are the teacher's probabilities. With features (inner tensors
    of the same shape in both), each is matched by a mean squared error relative to the
    teacher's variance, which trains every layer toward its counterpart at once."""
    soft = lambda logits: torch.sigmoid(logits).detach()  # noqa: E731
    terms = {
        "coordinates": (student.coordinates - teacher.coordinates.detach()).abs().sum(-1).mean(),
        "heatmap": 10.0 * F.binary_cross_entropy_with_logits(student.heatmaps, soft(teacher.heatmaps)).sub(
            F.binary_cross_entropy_with_logits(teacher.heatmaps.detach(), soft(teacher.heatmaps))),
        "visibility": 0.1 * F.binary_cross_entropy_with_logits(student.visibility, soft(teacher.visibility)),
        "presence": 0.1 * F.binary_cross_entropy_with_logits(student.presence, soft(teacher.presence)),
        "flag": 0.1 * (student.flag - teacher.flag.detach()).abs().mean(),
        "world": (student.world - teacher.world.detach()).abs().mean(),
    }
    if student_features:
        terms["features"] = sum(
            F.mse_loss(value, teacher_features[name].detach()) / teacher_features[name].detach().var().clamp_min(1e-6)
            for name, value in student_features.items()) / len(student_features)
    terms["total"] = sum(terms.values())
    return terms


def landmark_errors(out: Outputs, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per labelled landmark: error in person sizes (B, 33), and the mask of labelled ones."""
    error = (out.coordinates[:, :NUM_BODY, :2] - batch["keypoints"]).norm(dim=-1) / batch["size"][:, None]
    return error, batch["weight"] > 0


def pck_counts(out: Outputs, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """Hits per PCK threshold and the number of labelled landmarks (sums, so batches add up)."""
    error, labelled = landmark_errors(out, batch)
    counts = {f"pck@{t}": float(((error < t) & labelled).sum()) for t in PCK_THRESHOLDS}
    counts["landmarks"] = float(labelled.sum())
    return counts
