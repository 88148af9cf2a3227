"""MediaPipe's pose connections: the 35 pairs of landmark indices a skeleton is drawn with."""

from ..topology import POSE_CONNECTIONS as _PAIRS

POSE_CONNECTIONS: frozenset[tuple[int, int]] = frozenset(_PAIRS)
