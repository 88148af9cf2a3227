"""The ``posepipe`` command: ``image``, ``demo`` and ``trace``.

Exit codes: 0 all inputs done, 1 some inputs failed (each has an error record), 2 the run
could not start (bad option, model unavailable, output not writable), 130 interrupted.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .errors import PosepipeError

_model_options = [
    click.option("--num-poses", default=1, show_default=True, help="Most people to find per image."),
    click.option("--min-detection-confidence", default=0.5, show_default=True, help="Person detector threshold."),
    click.option("--min-presence-confidence", default=0.5, show_default=True, help="Landmark model pose threshold."),
    click.option("--backend", type=click.Choice(["auto", "onnxruntime", "litert"]), default="auto", show_default=True,
                 help="auto: litert where installed (faster on CPU), else onnxruntime."),
    click.option("--threads", default=0, help="Inference threads (0: all cores)."),
    click.option("--detector-model", type=click.Path(), help="A BlazePose detector .tflite."),
    click.option("--landmark-model", type=click.Path(), help="A BlazePose landmark .tflite (lite/full/heavy)."),
]


def model_options(f):
    for option in reversed(_model_options):
        f = option(f)
    return f


def _landmarker(opts: dict, masks: bool = False):
    from .pipeline import PoseLandmarker, PoseLandmarkerOptions

    return PoseLandmarker(PoseLandmarkerOptions(
        num_poses=opts["num_poses"], min_pose_detection_confidence=opts["min_detection_confidence"],
        min_pose_presence_confidence=opts["min_presence_confidence"], backend=opts["backend"],
        threads=opts["threads"], detector_model=opts["detector_model"], landmark_model=opts["landmark_model"],
        output_segmentation_masks=masks))


def _fail(message: str, code: int = 2):
    click.echo(f"posepipe: error: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="posepipe")
def main() -> None:
    """33-landmark human pose estimation, MediaPipe Pose in Python."""


def process_images(paths: list[str], output: str | None, overlay: str | None, opts: dict) -> int:
    """Write one record per input image; returns how many inputs failed."""
    from .drawing import PoseAnnotator
    from .io import JsonLinesWriter, error_record, expand_inputs, image_record, read_image, write_image

    overlay_dir = Path(overlay) if overlay else None
    if overlay_dir:
        try:
            overlay_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PosepipeError(f"cannot create the overlay folder {overlay_dir}: {exc.strerror or exc}") from None
    annotator = PoseAnnotator()
    failures = 0
    with _landmarker(opts) as landmarker, JsonLinesWriter(output) as writer:
        for path in expand_inputs(paths):
            source = str(path)
            try:
                image = read_image(path)
                poses = landmarker.detect(image)
            except PosepipeError as exc:
                writer.write(error_record(source, str(exc)))
                click.echo(f"posepipe: {source}: {exc}", err=True)
                failures += 1
                continue
            writer.write(image_record(source, image, poses))
            if overlay_dir:
                write_image(overlay_dir / (path.stem + ".png"), annotator.annotate(image, poses))
    return failures


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("-o", "--output", help="JSON-lines file to write (default: standard output).")
@click.option("--overlay", type=click.Path(file_okay=False), help="Folder for the drawn pictures.")
@model_options
def image(paths, output, overlay, **opts):
    """Find poses in image files or folders of images; one JSON line per image."""
    failures = process_images(list(paths), output, overlay, opts)
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


def run() -> None:
    """Console entry point: user errors become one sentence, never a traceback."""
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
