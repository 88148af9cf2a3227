"""The ``posepipe`` command: ``image``, ``video``, ``batch``, ``serve``, ``webcam``, ``angles``, ``demo``, ``trace``;
``label``, ``train``, ``distill`` and ``eval`` for training and evaluation; ``models add`` and
``models list`` for MediaPipe's model files.

Exit codes: 0 all inputs done, 1 some inputs failed (each has an error record), 2 the run
could not start (bad option, model unavailable, output not writable), 130 interrupted.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path

import click

from .errors import PosepipeError

_model_options = [
    click.option("--num-poses", default=1, show_default=True, help="Most people to find per image."),
    click.option("--min-detection-confidence", default=0.5, show_default=True, help="Person detector threshold."),
    click.option("--min-presence-confidence", default=0.5, show_default=True, help="Landmark model pose threshold."),
    click.option("--backend", type=click.Choice(["auto", "onnxruntime", "litert"]), default="auto", show_default=True,
                 help="auto: per model, the one measured faster on this machine (once, cached)."),
    click.option("--threads", default=0,
                 help="Inference threads (0: all cores, and video tracking moves to one thread "
                      "while other processes keep a core busy)."),
    click.option("--detector-model", type=click.Path(), help="A BlazePose detector .tflite."),
    click.option("--landmark-model", type=click.Path(),
                 help="A BlazePose landmark .tflite (lite/full/heavy), or a trained landmark .onnx."),
    click.option("--accurate", is_flag=True,
                 help="More landmark passes per person (refined crops, a fallback where the detector finds "
                      "nobody): fewer misses, about 2-3x the time (docs/accuracy.md)."),
]


def model_options(f):
    for option in reversed(_model_options):
        f = option(f)
    return f


# The commands that go through many photos or frames take it; webcam's --device is its camera.
device_option = click.option(
    "--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
    help="cuda: both models on an NVIDIA GPU through ONNX Runtime (pip install 'posepipe[gpu]'; docs/batch.md).")


def _landmarker_options(opts: dict, masks: bool = False):
    from .pipeline import PoseLandmarkerOptions

    return PoseLandmarkerOptions(
        num_poses=opts["num_poses"], min_pose_detection_confidence=opts["min_detection_confidence"],
        min_pose_presence_confidence=opts["min_presence_confidence"], backend=opts["backend"],
        device=opts.get("device", "cpu"), threads=opts["threads"], detector_model=opts["detector_model"],
        landmark_model=opts["landmark_model"], output_segmentation_masks=masks, accurate=opts["accurate"])


def _landmarker(opts: dict, masks: bool = False):
    from .pipeline import PoseLandmarker

    return PoseLandmarker(_landmarker_options(opts, masks))


def _fail(message: str, code: int = 2):
    click.echo(f"posepipe: error: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="posepipe")
def main() -> None:
    """33-landmark human pose estimation, MediaPipe Pose in Python."""


def process_images(paths: list[str], output: str | None, overlay: str | None, opts: dict,
                   boxes_path: str | None = None) -> int:
    """Write one record per input image; returns how many inputs failed. With ``boxes_path``,
    each image's poses come from its boxes in that file (matched by file name)."""
    from .drawing import PoseAnnotator
    from .io import (JsonLinesWriter, error_record, expand_inputs, image_record, read_boxes, read_image,
                     why_not_writable, write_image)
    from .photos import PhotoRunner

    boxes = read_boxes(boxes_path) if boxes_path else None
    overlay_dir = Path(overlay) if overlay else None
    reason = why_not_writable(Path(output)) if output and output != "-" else None
    if reason:  # found before the overlay folder is made
        raise PosepipeError(f"cannot write {output}: {reason}")
    if overlay_dir:
        try:
            overlay_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PosepipeError(f"cannot create the overlay folder {overlay_dir}: {exc.strerror or exc}") from None
    annotator = PoseAnnotator()
    inputs = list(expand_inputs(paths))

    def one(landmarker, path: Path) -> tuple[str, dict, str | None]:
        """The record of one photo, or its error record and the error (run side by side)."""
        source = str(path)
        try:
            if boxes is not None and path.name not in boxes:
                raise PosepipeError(f"{boxes_path} has no boxes for {path.name}")
            image = read_image(path)
            poses = landmarker.detect(image, boxes=None if boxes is None else boxes[path.name])
        except PosepipeError as exc:
            return source, error_record(source, str(exc)), str(exc)
        if overlay_dir:
            write_image(overlay_dir / (path.stem + ".png"), annotator.annotate(image, poses))
        return source, image_record(source, image, poses), None

    failures = 0
    with PhotoRunner(_landmarker_options(opts), len(inputs)) as runner, JsonLinesWriter(output) as writer:
        for source, record, error in runner.map(one, inputs):
            writer.write(record)
            if error:
                click.echo(f"posepipe: {source}: {error}", err=True)
                failures += 1
    return failures


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("-o", "--output", help="JSON-lines file to write (default: standard output).")
@click.option("--overlay", type=click.Path(file_okay=False), help="Folder for the drawn pictures.")
@click.option("--boxes", "boxes_path", type=click.Path(dir_okay=False),
              help='People\'s boxes instead of the detector: JSON lines {"source": "<file name or path>", '
                   '"boxes": [[x, y, w, h], ...]} in pixels, matched to the inputs by file name; one pose per '
                   'box where one is present, with its "box_index".')
@model_options
@device_option
def image(paths, output, overlay, boxes_path, **opts):
    """Find poses in image files or folders of images; one JSON line per image."""
    failures = process_images(list(paths), output, overlay, opts, boxes_path)
    if failures:
        click.echo(f"posepipe: {failures} input(s) could not be processed", err=True)
        sys.exit(1)


@main.command()
@click.option("--out", "out_dir", default="out", show_default=True, type=click.Path(file_okay=False))
@model_options
def demo(out_dir, **opts):
    """Run on a photo shipped with matplotlib (Grace Hopper): writes OUT/demo.jsonl and OUT/overlay/."""
    try:
        from matplotlib import cbook
    except ImportError:
        raise PosepipeError("the demo photo ships with matplotlib: pip install 'posepipe[demo]'") from None
    sample = str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    out = Path(out_dir)
    failures = process_images([sample], str(out / "demo.jsonl"), str(out / "overlay"), opts)
    click.echo(f"wrote {out / 'demo.jsonl'} and {out / 'overlay' / 'grace_hopper.png'}")
    sys.exit(1 if failures else 0)


@main.command()
@click.argument("image_path", type=click.Path())
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the pictures.")
@model_options
def trace(image_path, out_dir, **opts):
    """Show the pipeline stage by stage: tensor shapes, value ranges, times and pictures."""
    from rich.console import Console
    from rich.table import Table

    from .trace import run_trace

    with _landmarker(opts, masks=True) as landmarker:
        rows = run_trace(image_path, out_dir, landmarker)
    table = Table(title=f"posepipe trace: {image_path}")
    for column in ("stage", "tensor", "shape", "min", "max", "ms"):
        table.add_column(column, justify="right" if column in ("min", "max", "ms") else "left")
    for r in rows:
        table.add_row(r.stage, r.what, "×".join(map(str, r.shape)), f"{r.low:.3g}", f"{r.high:.3g}", f"{r.ms:.1f}")
    Console().print(table)
    click.echo(f"pictures in {out_dir}: 1_detector_input.png 2_crop.png 3_heatmaps.png 4_mask.png 5_overlay.png")


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", "dataset_dir", required=True, type=click.Path(file_okay=False),
              help="Dataset folder to write: frames/, crops/ and labels.jsonl.")
@click.option("--every", default=10, show_default=True, type=click.IntRange(min=1),
              help="Keep every Nth frame of a video (all frames are tracked).")
@model_options
def label(inputs, dataset_dir, every, **opts):
    """Pseudo-label images, folders and videos with the pretrained model, into a dataset to train on.

    Writes DATASET_DIR/frames/ (the pictures), DATASET_DIR/crops/ (each person's 256×256 crop,
    to look at) and DATASET_DIR/labels.jsonl (posepipe's JSON lines plus each pose's crop,
    "roi": [x, y, size, rotation]), which training and `posepipe eval --labels` read.
    """
    from .training.pseudo_labels import make_dataset
    from .video.tracking import PoseTracker

    def report(source: str, message: str) -> None:
        click.echo(f"posepipe: {source}: {message}", err=True)

    stats = make_dataset(list(inputs), dataset_dir, landmarker=lambda: _landmarker(opts),
                         tracker=lambda: PoseTracker(smooth=False, landmarker=_landmarker(opts)),
                         every=every, on_error=report)
    click.echo(f"{stats.images} pictures, {stats.people} people: wrote {Path(dataset_dir) / 'labels.jsonl'}")
    if stats.failures:
        click.echo(f"posepipe: {stats.failures} input(s) could not be processed", err=True)
        sys.exit(1)


def _tracker(opts: dict, smooth: bool):
    from .video.tracking import PoseTracker

    return PoseTracker(smooth=smooth, landmarker=_landmarker(opts))


def _progress(total: int | None):
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[fps]:>5.1f} fps"), TimeElapsedColumn()]
    if total:
        columns.append(TimeRemainingColumn())
    return Progress(*columns, console=Console(stderr=True))


def _track_video(source, opts, smooth, zero_lag, outputs, progress: bool, live=None) -> int:
    """Run the tracker over ``source`` into ``outputs``; returns the exit code."""
    from .video.runner import track_video

    with _tracker(opts, smooth and zero_lag is None) as tracker:
        bar = _progress(source.frame_count) if progress else None
        on_frame = live.show if live else None
        if bar:
            bar.start()
            task = bar.add_task(Path(source.name).name[:40], total=source.frame_count, fps=0.0)
            started = time.perf_counter()

            def on_frame(frame, _poses):
                done = frame.index + 1
                bar.update(task, completed=done, fps=done / max(1e-9, time.perf_counter() - started))
        try:
            stats = track_video(source, tracker, outputs, zero_lag, on_frame)
        finally:
            if bar:
                bar.stop()
            if live:
                live.close()
    return _report(stats)


def _video_outputs(output, overlay, csv_path, parquet_path, stdout_by_default: bool = True):
    """JSON lines go to standard output when no file output is asked for (not with a live window)."""
    from .video.outputs import STDOUT, VideoOutputs

    if not output and stdout_by_default and not (overlay or csv_path or parquet_path):
        output = STDOUT
    return VideoOutputs(jsonl=output, csv=csv_path, parquet=parquet_path, overlay=overlay)


def _report(stats) -> int:
    if stats.interrupted:
        click.echo(f"posepipe: interrupted after {stats.frames} frames; outputs so far are complete", err=True)
        return 130
    if stats.failed_frames:
        click.echo(f"posepipe: {stats.failed_frames} frame(s) could not be read", err=True)
        return 1
    return 0


_output_options = [
    click.option("-o", "--output", help="JSON-lines file, one record per frame (default: standard output "
                 "when no other output is given)."),
    click.option("--overlay", type=click.Path(dir_okay=False), help="Drawn video (.mp4/.mov/.mkv), audio kept."),
    click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Wide CSV: a row per frame and person."),
    click.option("--parquet", "parquet_path", type=click.Path(dir_okay=False),
                 help="Long Parquet: a row per frame, person and landmark."),
    click.option("--smooth/--no-smooth", default=True, show_default=True,
                 help="MediaPipe's landmark filtering (one-euro; causal, for live use)."),
]


def output_options(f):
    for option in reversed(_output_options):
        f = option(f)
    return f


@main.command()
@click.argument("source")
@output_options
@click.option("--zero-lag", type=float, metavar="HZ",
              help="Instead of the live filter, a zero-lag Butterworth low-pass at HZ over the whole "
                   "recording (files only; e.g. 6 for walking) before computing angles.")
@click.option("--fps", default=30.0, show_default=True, help="Frame rate of an image sequence.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@model_options
@device_option
def video(source, output, overlay, csv_path, parquet_path, smooth, zero_lag, fps, no_progress, **opts):
    """Track poses through a video file, stream URL, image folder or glob ("frames/*.jpg")."""
    from .video.sources import open_source

    outputs = _video_outputs(output, overlay, csv_path, parquet_path)
    outputs.check(source, zero_lag_hz=zero_lag)  # before the source is opened and the models loaded
    with open_source(source, fps) as frames:
        code = _track_video(frames, opts, smooth, zero_lag, outputs, progress=not no_progress and sys.stderr.isatty())
    sys.exit(code)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Dataset folder: poses/part-*.parquet, sources.parquet, batch.json.")
@click.option("--workers", type=click.IntRange(min=1),
              help="Processes, each with its own models (default: one per core, with --device cuda one per "
                   "GPU; Ray: as many as fit).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", help="A Ray cluster's address (default: start Ray on this machine).")
@click.option("--overwrite", is_flag=True, help="Start over: remove the folder's dataset first.")
@click.option("--smooth/--no-smooth", default=True, show_default=True,
              help="Videos: MediaPipe's landmark filtering (one-euro).")
@click.option("--zero-lag", type=float, metavar="HZ",
              help="Videos: instead of the live filter, a zero-lag Butterworth low-pass at HZ.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@model_options
@device_option
def batch(inputs, out_dir, workers, engine, address, overwrite, smooth, zero_lag, no_progress, **opts):
    """Photos and videos, any number, into one Parquet dataset; resumable (run it again to finish).

    INPUT: files, folders (searched recursively), globs ("clips/**/*.mp4"), or manifests: a .txt
    with one path a line, or a .csv / .parquet with a 'path' column. Photos go through the still
    pipeline (as `posepipe image`), videos through tracking (as `posepipe video`).
    """
    from .batch import BatchOptions, run_batch

    options = BatchOptions(smooth=smooth, zero_lag=zero_lag, **opts)
    try:
        summary = run_batch(inputs, out_dir, options, workers=workers, engine=engine, address=address,
                            overwrite=overwrite, progress=not no_progress and sys.stderr.isatty())
    except KeyboardInterrupt:
        _fail(f"interrupted; {out_dir} keeps every input finished: run the same command again to finish", 130)
    skipped = f" ({summary.finished_before} done before)" if summary.finished_before else ""
    click.echo(f"{summary.sources} inputs{skipped}: {summary.done_now} done now, {summary.frames_now} frames in "
               f"{summary.seconds:.1f} s; wrote {Path(out_dir) / 'poses'} and {Path(out_dir) / 'sources.parquet'}",
               err=True)
    if summary.failed:
        click.echo(f"posepipe: {summary.failed} input(s) could not be processed (see sources.parquet)", err=True)
        sys.exit(1)


# The serve extra's packages: missing, `posepipe serve` says which extra to install.
_SERVE_PACKAGES = {"fastapi", "starlette", "uvicorn", "python_multipart", "pydantic"}


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (the loopback default: this machine only; 0.0.0.0: every network).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--data-dir", default="posepipe-data", show_default=True, type=click.Path(file_okay=False),
              help="Folder for video jobs (their uploads and outputs).")
@click.option("--token", envvar="POSEPIPE_TOKEN", help="Require 'Authorization: Bearer TOKEN' on every API call "
              "(default: the POSEPIPE_TOKEN environment variable).")
@click.option("--max-image-mb", default=20.0, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--max-video-mb", default=2000.0, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--max-megapixels", default=50.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Largest photo or video frame, width × height (against decompression bombs).")
@click.option("--max-concurrent", default=8, show_default=True, type=click.IntRange(min=1),
              help="Photo requests in flight at once; one more gets 503 with Retry-After.")
@click.option("--request-timeout", default=60.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds a photo request may take, upload included.")
@click.option("--max-ws-message-mb", default=4.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Largest live-stream frame.")
@click.option("--job-queue-size", default=8, show_default=True, type=click.IntRange(min=1),
              help="Video jobs waiting at once; one more gets 503.")
@click.option("--cors-origin", "cors_origins", multiple=True,
              help="An origin whose pages may call the API (repeatable; default none).")
def serve(host, port, data_dir, token, max_image_mb, max_video_mb, max_megapixels, max_concurrent, request_timeout,
          max_ws_message_mb, job_queue_size, cors_origins):
    """An HTTP service: photos (POST /v1/pose), video jobs (/v1/jobs), a live WebSocket stream
    (/v1/stream), a page at / that shows what the model sees, the API reference at /docs."""
    try:
        from .serve import Settings, run as serve_forever
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] in _SERVE_PACKAGES:
            raise PosepipeError("posepipe serve needs the serve extra: pip install 'posepipe[serve]'") from None
        raise
    mb = 1_000_000
    settings = Settings(host=host, port=port, data_dir=Path(data_dir), token=token or None,
                        max_image_bytes=round(max_image_mb * mb), max_video_bytes=round(max_video_mb * mb),
                        max_pixels=round(max_megapixels * mb), max_concurrent=max_concurrent,
                        request_timeout_s=request_timeout, max_ws_message_bytes=round(max_ws_message_mb * mb),
                        job_queue_size=job_queue_size, cors_origins=tuple(cors_origins))
    serve_forever(settings)


class _LiveWindow:
    """A Tk window showing the drawn frames (the headless OpenCV wheel has no windows).
    Tk wants one thread, so it is fed from the tracking loop's own thread."""

    def __init__(self, title: str):
        import tkinter

        self.root = tkinter.Tk()
        self.root.title(title)
        self.label = tkinter.Label(self.root)
        self.label.pack()
        self.closed = False
        self.root.protocol("WM_DELETE_WINDOW", self._close)
        self.root.bind("q", lambda _e: self._close())
        from .drawing import PoseAnnotator

        self.annotator = PoseAnnotator()

    def _close(self) -> None:
        self.closed = True

    def show(self, frame, poses) -> None:
        import tkinter

        if self.closed:
            raise KeyboardInterrupt
        if frame.image is None:
            return
        drawn = self.annotator.annotate(frame.image, poses)
        header = f"P6 {drawn.shape[1]} {drawn.shape[0]} 255 ".encode()
        self.photo = tkinter.PhotoImage(data=header + drawn.tobytes(), format="PPM")
        self.label.configure(image=self.photo)
        self.root.update()

    def close(self) -> None:
        try:
            self.root.destroy()
        except Exception:  # noqa: BLE001 - already gone with the display
            pass


@main.command()
@click.option("--device", default=0, show_default=True, help="Camera index.")
@output_options
@click.option("--no-window", is_flag=True, help="Do not show the live window.")
@model_options
def webcam(device, output, overlay, csv_path, parquet_path, smooth, no_window, **opts):
    """Live poses from a camera, drawn in a window (q or closing it stops); Ctrl-C stops too."""
    from .video.sources import CameraSource

    _video_outputs(output, overlay, csv_path, parquet_path, stdout_by_default=False).check()  # before a window opens
    live = None
    if not no_window:
        try:
            live = _LiveWindow(f"posepipe: camera {device}")
        except Exception:  # noqa: BLE001 - no display, or Python without Tk
            click.echo("posepipe: no display for a live window; tracking without one", err=True)
    outputs = _video_outputs(output, overlay, csv_path, parquet_path, stdout_by_default=live is None)
    with CameraSource(device) as frames:
        code = _track_video(frames, opts, smooth, None, outputs, progress=False, live=live)
    sys.exit(0 if code == 130 else code)  # stopping the camera is the normal end


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("-o", "--output", default="angles.csv", show_default=True, help="CSV of angles to write.")
@click.option("--plot", type=click.Path(dir_okay=False), help="PNG of the angles over time (one track).")
@click.option("--track-id", type=int, help="Only this person (default: every track).")
@click.option("--visibility-threshold", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Angles with a landmark less visible than this are left empty.")
def angles(input_path, output, plot, track_id, visibility_threshold):
    """Joint angles (elbows, shoulders, hips, knees, ankles, trunk; 2-D and 3-D) from posepipe's
    JSON lines, CSV or Parquet output."""
    from .analysis.angles import angle_table, plot_angles, write_angles_csv
    from .video.exports import load_pose_table

    series = load_pose_table(input_path)
    if track_id is not None:
        if track_id not in series:
            raise PosepipeError(f"{input_path} has no track {track_id} (tracks: {', '.join(map(str, series))})")
        series = {track_id: series[track_id]}
    tables = [angle_table(s, visibility_threshold) for s in series.values()]
    write_angles_csv(tables, output)
    written = [output]
    if plot:
        first = next(iter(series.values()))
        plot_angles(tables[0], plot, source=first.source)
        written.append(f"{plot} (track {first.track_id})")
    frames = len(set().union(*(s.frame.tolist() for s in series.values())))
    click.echo(f"{frames} frames, {len(series)} track(s): wrote {', '.join(written)}")


@main.group("models")
def models_group() -> None:
    """MediaPipe's model files in posepipe's cache: add the lite and heavy landmark models
    (model_complexity 0 and 2), which posepipe cannot download, and list what is there."""


@models_group.command("add")
@click.argument("files", nargs=-1, required=True, type=click.Path())
def models_add(files):
    """Check model files and copy them into the cache: BlazePose .tflite detectors and landmark
    models (lite, full, heavy), or pose landmarker .task bundles. Prints a line per model added;
    a file that is not one gets one sentence and the exit code is 1 (the others are added)."""
    from .models import registry

    failures = 0
    for file in files:
        try:
            added = registry.add([file])
        except PosepipeError as exc:
            click.echo(f"posepipe: error: {exc}", err=True)
            failures += 1
            continue
        for model in added:
            click.echo(f"{file}: {model.what}, {model.release} → {model.path} ({model.use})")
    if failures:
        sys.exit(1)


@models_group.command("list")
def models_list():
    """The model files in the cache: what each is, its release, and what posepipe uses it for."""
    from rich.console import Console
    from rich.table import Table

    from .models import registry
    from .models.assets import cache_dir

    folder = cache_dir() / "models"
    found = registry.listing()
    if not found:
        click.echo(f"no model files in {folder}: posepipe fetches its default ones on first use; "
                   "add others with `posepipe models add FILE`")
        return
    table = Table(title=f"posepipe models in {folder}")
    for column in ("file", "kind", "release", "size", "sha256", "used as"):
        table.add_column(column, justify="right" if column == "size" else "left", no_wrap=column != "release")
    for m in found:
        table.add_row(m.path.name, m.what, m.release, f"{m.size / 1e6:.1f} MB", m.sha256[:12], m.use)
    Console(width=None if sys.stdout.isatty() else 1000).print(table)


def eval_model_options(f):
    """The model options less --num-poses: the evaluation protocol looks for one person per crop."""
    for option in reversed(_model_options):
        if option(lambda: None).__click_params__[0].name != "num_poses":
            f = option(f)
    return f


@main.command("eval")
@click.option("--labels", "labels_path", required=True, type=click.Path(),
              help="Labelled people: COCO keypoints JSON, limb_joints.json, MPII JSON or posepipe JSON lines.")
@click.option("--images", type=click.Path(), help="Folder of the labelled images (default: found next to the labels).")
@click.option("--model", "models", multiple=True, metavar="SPEC",
              help="A landmark model to score, repeatable for a side-by-side table: 'default' (MediaPipe's full "
                   "model), a .tflite or a trained .onnx path; '@BACKEND' after it picks the runtime of the whole "
                   "pipeline (default@litert, run/model.onnx@onnxruntime); otherwise --backend.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the results as JSON.")
@click.option("--from-boxes", is_flag=True,
              help="Give each person's labelled box to the pipeline (whole image, no detector) instead of the crop.")
@eval_model_options
def evaluate_command(labels_path, images, models, json_path, from_boxes, **opts):
    """Score landmark models on labelled people: PCK@0.05, PCK@0.1 and mean error (÷ person size)
    per landmark, misses, and OKS AP for COCO-format labels.

    Each person is cropped to their box grown by 25% a side and the whole pipeline runs on the
    crop (one pose); a person with no pose found fails all their joints. --from-boxes gives the
    labelled box instead, on the whole image. --landmark-model M
    counts as one more --model M; with neither, 'default' is scored.

    \b
    posepipe eval --labels ../shared/data/labels/limb_joints.json \\
        --model default --model run/model.onnx --model default@litert --json scores.json
    """
    from .analysis.evaluation import compare, parse_model_spec
    from .analysis.labels import load_labels
    from .pipeline import PoseLandmarkerOptions

    written = list(models) + ([opts["landmark_model"]] if opts["landmark_model"] else [])
    specs = [parse_model_spec(text, opts["backend"]) for text in written or ["default"]]
    if json_path:  # an output that cannot be written fails before the models run, not after
        folder = Path(json_path).parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise PosepipeError(f"cannot write {json_path}: {folder} is not a writable folder")
    people = load_labels(labels_path, images)
    options = PoseLandmarkerOptions(
        min_pose_detection_confidence=opts["min_detection_confidence"],
        min_pose_presence_confidence=opts["min_presence_confidence"], threads=opts["threads"],
        detector_model=opts["detector_model"], accurate=opts["accurate"])
    results = compare(people, specs, options, from_boxes=from_boxes)
    _print_evaluation(labels_path, results)
    if json_path:
        import json

        report = {"labels": str(labels_path), "models": [r.to_dict() for r in results]}
        try:
            Path(json_path).write_text(json.dumps(report, indent=1) + "\n")
        except OSError as exc:
            raise PosepipeError(f"cannot write {json_path}: {exc.strerror or exc}") from None
        click.echo(f"wrote {json_path}")


def _print_evaluation(labels_path, results) -> None:
    """One table: a row per landmark and overall, a column per model holding PCK@0.05, PCK@0.1
    and the mean error; misses and COCO's OKS AP below."""
    from rich.console import Console
    from rich.table import Table

    first = results[0]
    table = Table(title=f"posepipe eval: {labels_path} ({first.persons} people, {first.joints} joints)")
    table.add_column("landmark", no_wrap=True)
    table.add_column("joints", justify="right")
    for r in results:
        table.add_column(f"{r.name}\nPCK@.05 PCK@.1 error", justify="right", no_wrap=True)
    number = lambda x, width: f"{'–' if x != x else f'{x:.3f}':>{width}}"  # noqa: E731 - NaN: nothing to average
    three = lambda values: " ".join(number(v, w) for v, w in zip(values, (7, 6, 5)))  # noqa: E731 - under the header
    for name, s in first.per_landmark.items():
        scores = [r.per_landmark[name] for r in results]
        table.add_row(name, str(s.joints), *[three((*p.pck.values(), p.mean_error)) for p in scores])
    table.add_section()
    table.add_row("all", str(first.joints), *[three((*r.pck.values(), r.mean_error)) for r in results])
    table.add_row(f"missed (of {first.persons})", "", *[str(r.misses) for r in results])
    if first.coco is not None:
        table.add_row("OKS AP, AP50, AP75", "", *[three([r.coco[k] for k in ("AP", "AP50", "AP75")]) for r in results])
    # Piped or redirected: as wide as the table needs, so no number is cut.
    Console(width=None if sys.stdout.isatty() else 1000).print(table)


# --------------------------------------------------------------------------- training


def _training():
    try:
        from .training import trainer
    except ImportError as exc:
        if "torch" not in str(exc):
            raise
        raise PosepipeError("training needs PyTorch: pip install 'posepipe[train]'") from None
    return trainer


def _fit(trainer_module, make_trainer, run_dir: str) -> None:
    """Build the run and train it, a table row per epoch under a progress bar."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    trainer = make_trainer()
    console.print(f"train {len(trainer.train_set)} people, validate {len(trainer.val_set)}, on {trainer.device}; "
                  f"writing {run_dir}")
    console.print(trainer_module.TRACE_HEADER)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeRemainingColumn(), console=console, transient=True) as progress:
        def make_progress(total, description):
            task = progress.add_task(description, total=total)
            return lambda n: progress.advance(task, n)

        try:
            rows = trainer.fit(report=lambda row: progress.console.print(trainer_module.format_row(row)),
                               progress_factory=make_progress)
        except KeyboardInterrupt:
            raise PosepipeError(f"interrupted; {run_dir}/weights/last.pt keeps the last complete epoch "
                                f"({trainer.epoch - 1}): resume with --resume {run_dir}") from None
        except trainer_module.TrainingDiverged as exc:
            trainer_module.write_trace(Path(run_dir), trainer.rows)
            click.echo(f"posepipe: error: {exc}", err=True)
            sys.exit(1)
    best = trainer.best
    int8 = ", model_int8.onnx" if trainer.config.distill else ""
    measure = "val loss" if trainer.config.distill else "val PCK@0.1"
    click.echo(f"{len(rows) - 1} epochs; best {measure} {best[1]:.3f} (epoch {best[0]}); "
               f"wrote {run_dir}/model.onnx{int8}, trace.csv, trace.json, trace.png")


def train_options(f):
    options = [
        click.option("--data", multiple=True, type=click.Path(), help="Labels to train on (repeatable): COCO "
                     "keypoints JSON, limb_joints.json, MPII JSON, posepipe JSON lines or a `posepipe label` folder."),
        click.option("--images", type=click.Path(), help="Folder of the labelled images (default: found next to "
                     "the labels)."),
        click.option("--val-data", multiple=True, type=click.Path(), help="Held-out labels to validate on "
                     "(default: --val-fraction of --data's images)."),
        click.option("--val-fraction", default=0.2, show_default=True, type=click.FloatRange(0, 1)),
        click.option("--out", "run_dir", type=click.Path(file_okay=False), help="Run folder to write."),
        click.option("--resume", type=click.Path(file_okay=False), help="Continue the run in this folder."),
        click.option("--epochs", default=10, show_default=True, type=click.IntRange(1)),
        click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1)),
        click.option("--lr", type=float, help="Learning rate (default 1e-3 from scratch, 1e-5 fine-tuning and distilling)."),
        click.option("--seed", default=0, show_default=True),
        click.option("--device", default="auto", show_default=True, help="auto (a GPU where one exists), cpu, cuda."),
        click.option("--no-augment", is_flag=True, help="Train on the plain crops."),
        click.option("--landmark-model", type=click.Path(), help="The pretrained .tflite to start from (default: "
                     "MediaPipe's full model)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _train_or_distill(distill: bool, data, images, val_data, val_fraction, run_dir, resume, epochs, batch_size,
                      lr, seed, device, no_augment, landmark_model, from_scratch=False) -> None:
    trainer = _training()
    if resume:
        _fit(trainer, lambda: trainer.Trainer.resume(resume), resume)
        return
    if not run_dir or not data:
        raise PosepipeError("give --data and --out (or --resume RUN_DIR)")
    config = trainer.TrainConfig(
        data=list(data), images=images, val_data=list(val_data), val_fraction=val_fraction, epochs=epochs,
        batch_size=batch_size, lr=lr, from_scratch=from_scratch, distill=distill, augment=not no_augment,
        seed=seed, device=device, landmark_model=landmark_model)
    _fit(trainer, lambda: trainer.Trainer(config, run_dir), run_dir)


@main.command()
@train_options
@click.option("--from-scratch", is_flag=True, help="Random initial weights instead of MediaPipe's.")
def train(**kwargs):
    """Fine-tune the landmark model on labelled people (or train it from scratch).

    Prints a row per epoch (loss, PCK@0.1 on the training crops and on held-out images,
    learning rate, seconds) and writes RUN/trace.csv, trace.json, trace.png, weights/last.pt,
    weights/best.pt and model.onnx (use it with --landmark-model).
    """
    _train_or_distill(False, **kwargs)


@main.command()
@train_options
def distill(**kwargs):
    """Train a faster student (the landmark network with a third of its stem's channels
    removed, trained through int8 rounding) to copy the full model's outputs and features on
    unlabelled frames (e.g. a `posepipe label` folder). Writes model.onnx and model_int8.onnx,
    the student quantised for CPUs (1.9x the full model's speed on an AMD Zen 4)."""
    _train_or_distill(True, **kwargs)


def run() -> None:
    """Console entry point: user errors become one sentence, never a traceback."""
    try:
        _run()
    finally:
        # The process ends here. Its last garbage collection would walk every object the
        # models, OpenCV and NumPy left (20 ms of each command's exit, measured) only for the
        # system to take the memory back; frozen objects are left out of it. Files are
        # closed by then, and exit handlers (atexit) still run.
        gc.freeze()


def _run() -> None:
    try:
        main(standalone_mode=False)
    except click.exceptions.Abort:
        _fail("interrupted", 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except PosepipeError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except MemoryError:
        _fail("out of memory (is the image too large?)")


if __name__ == "__main__":
    run()
