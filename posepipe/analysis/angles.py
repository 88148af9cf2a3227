"""Joint angles over time, the first thing fitness and physiotherapy users ask of a pose track.

2-D angles come from the image (what the camera sees, foreshortened); 3-D angles come from the
world landmarks (metres), which do not depend on where the camera stands.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import PosepipeError
from ..video.exports import PoseSeries, open_for_writing
from ..topology import LANDMARK_INDEX

# (name, a, b, c): the angle at b between b→a and b→c, 0–180°.
JOINT_ANGLES: tuple[tuple[str, int, int, int], ...] = tuple(
    (f"{side}_{joint}", LANDMARK_INDEX[f"{side}_{a}"], LANDMARK_INDEX[f"{side}_{b}"], LANDMARK_INDEX[f"{side}_{c}"])
    for joint, a, b, c in (("elbow", "shoulder", "elbow", "wrist"), ("shoulder", "hip", "shoulder", "elbow"),
                           ("hip", "shoulder", "hip", "knee"), ("knee", "hip", "knee", "ankle"),
                           ("ankle", "knee", "ankle", "foot_index"))
    for side in ("left", "right")
)
TRUNK = "trunk_inclination"  # mid-hip → mid-shoulder against straight up (−y in image and world alike)
_TRUNK_POINTS = tuple(LANDMARK_INDEX[n] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
ANGLE_NAMES: tuple[str, ...] = (*(name for name, *_ in JOINT_ANGLES), TRUNK)
# Which landmarks each angle needs to be visible.
ANGLE_LANDMARKS: dict[str, tuple[int, ...]] = {name: (a, b, c) for name, a, b, c in JOINT_ANGLES}
ANGLE_LANDMARKS[TRUNK] = _TRUNK_POINTS
PLOT_GROUPS: tuple[str, ...] = ("elbows", "shoulders", "hips", "knees", "ankles", "trunk")


def _angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Degrees between vectors on the last axis; atan2 stays accurate near 0° and 180°, where
    arccos of a dot product loses half its digits. NaN where either vector has no length."""
    dot = np.sum(u * v, axis=-1)
    if u.shape[-1] == 2:
        cross = np.abs(u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0])
    else:
        cross = np.linalg.norm(np.cross(u, v), axis=-1)
    degenerate = (np.linalg.norm(u, axis=-1) == 0) | (np.linalg.norm(v, axis=-1) == 0)
    return np.where(degenerate, np.nan, np.degrees(np.arctan2(cross, dot)))


def joint_angles(points: np.ndarray) -> dict[str, np.ndarray]:
    """Every angle in ``ANGLE_NAMES`` for points shaped (..., 33, 2) (image x, y) or (..., 33, 3)."""
    points = np.asarray(points, np.float64)
    if points.ndim < 2 or points.shape[-2:] not in ((33, 2), (33, 3)):
        raise ValueError(f"expected points shaped (..., 33, 2) or (..., 33, 3), got {points.shape}")
    out = {name: _angle(points[..., a, :] - points[..., b, :], points[..., c, :] - points[..., b, :])
           for name, a, b, c in JOINT_ANGLES}
    ls, rs, lh, rh = (points[..., i, :] for i in _TRUNK_POINTS)
    up = np.zeros(points.shape[-1])
    up[1] = -1.0
    out[TRUNK] = _angle((ls + rs) / 2 - (lh + rh) / 2, np.broadcast_to(up, ls.shape))
    return out


def angle_table(series: PoseSeries, visibility_threshold: float = 0.5) -> dict[str, np.ndarray]:
    """Columns ``frame, timestamp_ms, track_id`` then ``<angle>_2d`` (image) and ``<angle>_3d``
    (world) per angle; NaN where one of the angle's landmarks is less visible than the threshold,
    since an angle drawn from a guessed point misleads more than a gap."""
    flat, deep = joint_angles(series.landmarks[..., :2]), joint_angles(series.world_landmarks)
    seen = series.visibility >= visibility_threshold
    table = {"frame": series.frame, "timestamp_ms": series.timestamp_ms,
             "track_id": np.full(len(series), series.track_id, np.int64)}
    for name in ANGLE_NAMES:
        visible = seen[:, list(ANGLE_LANDMARKS[name])].all(axis=1)
        table[f"{name}_2d"] = np.where(visible, flat[name], np.nan)
        table[f"{name}_3d"] = np.where(visible, deep[name], np.nan)
    return table


def _cell(column: str, value) -> str:
    if column in ("frame", "track_id"):
        return str(int(value))
    if np.isnan(value):
        return ""
    return f"{value:.3f}" if column == "timestamp_ms" else f"{value:.2f}"


def write_angles_csv(tables: Sequence[dict[str, np.ndarray]], path: str | Path) -> None:
    """One CSV from one table per track, rows ordered by frame then track; NaN is an empty cell."""
    if not tables:
        raise PosepipeError(f"no angles to write to {path}")
    columns = list(tables[0])
    merged = {c: np.concatenate([t[c] for t in tables]) for c in columns}
    order = np.lexsort((merged["track_id"], merged["frame"]))
    with open_for_writing(path, "w", newline="", encoding="utf-8") as stream:
        try:
            out = csv.writer(stream)
            out.writerow(columns)
            out.writerows([_cell(c, merged[c][i]) for c in columns] for i in order)
        except OSError as exc:
            raise PosepipeError(f"cannot write {path}: {exc.strerror or exc}") from None


def plot_angles(table: dict[str, np.ndarray], path: str | Path, which: Sequence[str] | None = None,
                source: str = "") -> None:
    """A PNG of angle against time, one panel per joint pair (``PLOT_GROUPS``, or ``which``):
    left and right in two colours, 2-D solid and 3-D dashed."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state
    except ImportError:
        raise PosepipeError("plots need matplotlib: pip install 'posepipe[analysis]'") from None
    groups = list(which or PLOT_GROUPS)
    unknown = [g for g in groups if g not in PLOT_GROUPS]
    if unknown:
        raise PosepipeError(f"unknown angle group {unknown[0]!r} (choose from {', '.join(PLOT_GROUPS)})")
    seconds = np.asarray(table["timestamp_ms"], np.float64) / 1000
    rows = (len(groups) + 1) // 2
    figure = Figure(figsize=(11, 2.6 * rows + 0.6), layout="constrained")
    axes = figure.subplots(rows, 2 if len(groups) > 1 else 1, sharex=True, squeeze=False).ravel()
    for ax, group in zip(axes, groups):
        names = [TRUNK] if group == "trunk" else [f"left_{group[:-1]}", f"right_{group[:-1]}"]
        for colour, name in zip(("tab:blue", "tab:orange"), names):
            for kind, style in (("2d", "-"), ("3d", "--")):
                ax.plot(seconds, table[f"{name}_{kind}"], style, color=colour, lw=1.2,
                        label=f"{name.split('_')[0]} {kind.upper()}")
        ax.set_title(group)
        ax.set_ylabel("angle (°)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", ncols=2)
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    for ax in axes[max(len(groups) - 2, 0):len(groups)]:
        ax.set_xlabel("time (s)")
    track = int(table["track_id"][0]) if len(table["track_id"]) else "?"
    figure.suptitle(f"{Path(source).name or 'poses'}, track {track}: joint angles (2-D solid, 3-D dashed)")
    with open_for_writing(path, "wb") as stream:
        try:
            figure.savefig(stream, format="png", dpi=100)
        except OSError as exc:
            raise PosepipeError(f"cannot write {path}: {exc.strerror or exc}") from None
