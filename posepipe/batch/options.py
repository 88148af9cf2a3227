"""The options of a batch: the pipeline's, as ``posepipe image`` and ``posepipe video`` take them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..errors import PosepipeError
from ..pipeline import PoseLandmarkerOptions


@dataclass(frozen=True)
class BatchOptions:
    num_poses: int = 1
    min_detection_confidence: float = 0.5
    min_presence_confidence: float = 0.5
    backend: str = "auto"
    device: str = "cpu"  # cuda: the models on ONNX Runtime's CUDA provider, a worker per GPU
    threads: int = 0  # per worker; 0: the cores shared out among the workers
    detector_model: str | None = None
    landmark_model: str | None = None
    accurate: bool = False  # posepipe's accurate mode (posepipe.accurate)
    smooth: bool = True  # videos: MediaPipe's live filter
    zero_lag: float | None = None  # videos: instead, a zero-lag low-pass at this many Hz

    def landmarker_options(self, threads: int) -> PoseLandmarkerOptions:
        options = PoseLandmarkerOptions(
            num_poses=self.num_poses, min_pose_detection_confidence=self.min_detection_confidence,
            min_pose_presence_confidence=self.min_presence_confidence, backend=self.backend, device=self.device,
            threads=threads, detector_model=self.detector_model, landmark_model=self.landmark_model, accurate=self.accurate)
        options.validate()
        if self.zero_lag is not None and not self.zero_lag > 0:
            raise PosepipeError("the zero-lag cutoff must be above 0 Hz")
        return options

    def fingerprint(self) -> dict:
        """What changes the results. The models count by their content, so another file at the same
        path is noticed. The backend, device and threads are left out: they change values by
        rounding (about 1e-6 of a landmark's scale), not what was found, so a run started on CPUs
        may be finished on a GPU."""
        from ..models.assets import resolve_models, sha256_of

        detector, landmark = resolve_models(self.detector_model, self.landmark_model)
        left_out = ("backend", "device", "threads", "detector_model", "landmark_model")  # models: by content below
        kept = {k: v for k, v in asdict(self).items() if k not in left_out}
        kept["smooth"] = self.smooth and self.zero_lag is None  # the zero-lag filter replaces the live one
        return kept | {"detector_model": sha256_of(detector), "landmark_model": sha256_of(landmark)}

    def with_threads(self, threads: int) -> "BatchOptions":
        return replace(self, threads=threads)
