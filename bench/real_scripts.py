"""Public scripts written for ``mp.solutions.pose``, run under MediaPipe 0.10.21 and under
posepipe with only the import line changed, and what each produced, compared.

The scripts are other people's code, so they are not part of posepipe: fetch each from its
repository at the commit below and save it as ``DIR/<name>.py``; the SHA-256 check proves it
unmodified. Both runs use one Python environment holding both packages (``make
real-scripts`` builds ``.bench/scripts``), so OpenCV, NumPy and the drawing code are the same
and the only difference is the line that imports ``mediapipe``. There is no screen or camera
here: ``_script_host.py`` plays a video as the camera and saves what ``cv2.imshow`` would show.

    python bench/real_scripts.py --scripts DIR [--python .bench/scripts/bin/python] [--noise-runs 3]

``--noise-runs N`` measures how far MediaPipe's own output moves when the video changes
imperceptibly: the video scripts run under MediaPipe again on lossless copies of the video
(FFV1), first unchanged (which must give MediaPipe's output exactly, or the copy is not
faithful), then N times with the first frame changed by one grey level on 1% of its pixels.
Tracking carries any difference forward, so this is the floor under what any other
implementation can be held to on that video.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from _perturb import perturbed

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
STREET = SHARED / "data" / "video" / "street_720p_205f.avi"
VIDEO = Path("<the video>")  # stands for --video in the scripts' inputs below
PHOTOS = SHARED / "data" / "images"
PHOTO = PHOTOS / "coco_000000000785.jpg"


@dataclass(frozen=True)
class Script:
    name: str
    kind: str
    repo: str
    path: str
    commit: str
    sha256: str
    # what the script opens -> what we put there: a file, a folder's files, or None for an empty folder
    inputs: dict[str, Path | None] = field(default_factory=dict)
    argv: tuple[str, ...] = ()
    camera: Path | None = None  # what cv2.VideoCapture(0) plays
    quit_key: int = -1  # the key the script stops on, pressed once the camera has run out


SCRIPTS = [
    Script("posture_side_view", "posture checker (neck and torso inclination, good/bad posture time)",
           "KetanSadheora/Posture-Correction-using-mediapipe", "human_posture_analysis_video.py",
           "e55903ac029735c7656b8eb733a1838c51dc7970",
           "ee235fb18a2a3ac274cf5936c124a0cb2e3658403d69bee129effbe9846deaf9", inputs={"input.mp4": VIDEO}),
    Script("posture_analytics", "posture checker with running averages, writes output.mp4",
           "IvanGael/Posture-Analysis-Mediapipe", "app.py", "73f6ac3b53f37a60f1860f9e29ff80570e536274",
           "ac0cc4d11a99a042835a35ddcb7da5678781375bb13ea50bd4fa73af4573b130", inputs={"video.mp4": VIDEO}),
    Script("curl_counter", "rep counter (elbow angle, webcam, custom DrawingSpecs)",
           "REEtDa/https---github.com-REEtDa-REP-COUNTER", "repcounter.py",
           "994ab145047cde0e4e46d35f9257e9efcbf4edff",
           "e4f4c172025bc2b8d3f1d4829863080890f2586a9b3ee22700c82e36a0a8e3c9", camera=VIDEO, quit_key=ord("q")),
    Script("landmarks_to_csv", "landmark-to-CSV extractor (33 × x, y, z, visibility per frame)",
           "SarunWeerakul/SWE4913-video-gait", "src/pose_extract.py", "3e0f050fe2df9cb8c001d60cee9fd97b4b52b837",
           "6250aed966e251ebacc8e05ae9548007687220a7f0963451d40c462e176f03ea",
           inputs={"clip.avi": VIDEO}, argv=("clip.avi", "landmarks.csv")),
    Script("print_landmarks", "prints each frame's landmark message (protobuf text format)",
           "baguajoe/Avatar-Forge", "src/api/utils/video_pose.py", "f115457476efa16d43acc1ae3c0ac8525daeff08",
           "e18cd3b462ad4b24d6be0e897b01ac276a6197b5d328936a3945744f05bb2db7", inputs={"video.mp4": VIDEO}),
    Script("segmentation_mask", "segmentation demo (shows Pose's segmentation_mask of a photo)",
           "twl2020/pythoncode", "day25/课堂代码/day25/08-姿态检测分离mask.py",
           "fd6f6fcdb94ab3e24d25ccccb114c0bef99d2151",
           "12455a2eafbb910fd3ff170e1759f5a2049bdc0626511ac818122012b0eaf994", inputs={"resources/ws.jpeg": PHOTO}),
    Script("annotate_photos", "draws the landmarks on every photo of a folder (static mode), writes JPEGs",
           "hyunmin0317/OpenCV_Study", "MediaPipePose/MediaPipePose(Image)/pose_image.py",
           "559f8d96feea5759049432c29717f1c73a70813b",
           "7946c379419533bcdf3d4ce838eb30e1d8b0aefc31eb3e1fe6cfe353e1bba64c", inputs={"images": PHOTOS, "results": None}),
]

IMPORT_LINE = re.compile(r"^(\s*(?:import|from)\s.*)\bmediapipe\b", re.MULTILINE)
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def as_posepipe(source: str) -> str:
    """The script with its one ``mediapipe`` import line pointed at posepipe, and nothing else changed."""
    changed, count = IMPORT_LINE.subn(r"\1posepipe", source)
    if count != 1:
        raise SystemExit(f"expected one line importing mediapipe, found {count}")
    return changed


def run(script: Script, source: str, python: str, folder: Path, timeout: float, video: Path) -> dict:
    folder.mkdir(parents=True)
    for name, target in script.inputs.items():
        target = video if target == VIDEO else target
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        if target is None:
            (folder / name).mkdir()
        elif target.is_dir():
            shutil.copytree(target, folder / name)
        else:
            shutil.copyfile(target, folder / name)
    (folder / "script.py").write_text(source, encoding="utf-8")
    env = dict(os.environ, SCRIPT_HOST_OUT=str(folder / "shown"), SCRIPT_HOST_QUIT_KEY=str(script.quit_key),
               GLOG_minloglevel="2", TF_CPP_MIN_LOG_LEVEL="2")
    if script.camera:
        env["SCRIPT_HOST_CAMERA"] = str(video if script.camera == VIDEO else script.camera)
    proc = subprocess.run([python, str(ROOT / "bench" / "_script_host.py"), "script.py", *script.argv],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)
    (folder / "stdout.txt").write_text(proc.stdout)
    return {"exit": proc.returncode, "stderr_tail": proc.stderr.strip().splitlines()[-1:] if proc.returncode else []}


def numbers_and_skeleton(text: str) -> tuple[np.ndarray, str]:
    return np.array([float(x) for x in NUMBER.findall(text)]), NUMBER.sub("#", text)


def compare_stdout(a: Path, b: Path) -> dict:
    na, sa = numbers_and_skeleton(a.read_text())
    nb, sb = numbers_and_skeleton(b.read_text())
    out = {"lines": [len(a.read_text().splitlines()), len(b.read_text().splitlines())], "same_text": sa == sb}
    if sa == sb and len(na):
        d = np.abs(na - nb)
        out.update(numbers=len(na), median_abs_diff=float(np.median(d)), p95_abs_diff=float(np.percentile(d, 95)))
    return out


def compare_csv(a: Path, b: Path) -> dict:
    """Rows, cells empty in one file only (a pose in one run only), and per kind of column (the
    name's last ``_`` part: x, y, z, vis...) the median and 95th percentile of the differences."""
    ra, rb = list(csv.reader(a.open())), list(csv.reader(b.open()))
    out = {"rows": [len(ra), len(rb)], "same_header": ra[:1] == rb[:1]}
    if len(ra) != len(rb) or not ra:
        return out
    kinds = [name.rsplit("_", 1)[-1] for name in ra[0]]
    empty_mismatch, diffs = 0, {}
    for x, y in zip(ra[1:], rb[1:]):
        for kind, u, v in zip(kinds, x, y):
            if (u == "") != (v == ""):
                empty_mismatch += 1
            elif u:
                diffs.setdefault(kind, []).append(abs(float(u) - float(v)))
    out["cells_empty_in_one_only"] = empty_mismatch
    for kind, d in diffs.items():
        if max(d) > 0:
            out[f"{kind}: median, p95 abs diff"] = [float(np.median(d)), float(np.percentile(d, 95))]
    return out


def pixel_stats(a: np.ndarray, b: np.ndarray) -> tuple[bool, float]:
    """(identical?, share of pixels that differ by more than an eighth of the range)."""
    if a.shape != b.shape:
        return False, 1.0
    diff = np.abs(a.astype(np.float32) - b.astype(np.float32))
    if diff.ndim == 3:
        diff = diff.max(axis=2)
    scale = 255.0 if a.dtype == np.uint8 else 1.0
    return bool(diff.max() == 0), float((diff > scale / 8).mean())


def compare_frames(frames_a: list[np.ndarray], frames_b: list[np.ndarray]) -> dict:
    out = {"frames": [len(frames_a), len(frames_b)]}
    stats = [pixel_stats(x, y) for x, y in zip(frames_a, frames_b)]
    if stats:
        changed = np.array([s[1] for s in stats])
        out.update(identical_frames=sum(s[0] for s in stats), median_changed_pixels=float(np.median(changed)),
                   max_changed_pixels=float(changed.max()))
    return out


def shown_frames(folder: Path) -> dict[str, list[np.ndarray]]:
    windows = {}
    for window in sorted(p for p in (folder / "shown").glob("*") if p.is_dir()):
        files = sorted(window.iterdir())
        windows[window.name] = [cv2.imread(str(f), cv2.IMREAD_UNCHANGED) if f.suffix == ".png" else np.load(f)
                                for f in files]
    return windows


def video_frames(path: Path) -> list[np.ndarray]:
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def mask_agreement(a: np.ndarray, b: np.ndarray) -> dict:
    ma, mb = a > 0.5, b > 0.5
    return {"mask_iou": float((ma & mb).sum() / max((ma | mb).sum(), 1)),
            "mean_abs_diff": float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())}


def compare(script: Script, mp_dir: Path, pp_dir: Path) -> dict:
    result = {"stdout": compare_stdout(mp_dir / "stdout.txt", pp_dir / "stdout.txt")}
    sa, sb = shown_frames(mp_dir), shown_frames(pp_dir)
    for window in sorted(set(sa) | set(sb)):
        fa, fb = sa.get(window, []), sb.get(window, [])
        result[f"imshow {window!r}"] = compare_frames(fa, fb)
        if fa and fb and fa[0].dtype != np.uint8:
            result[f"imshow {window!r}"].update(mask_agreement(fa[0], fb[0]))
    made = {p.relative_to(mp_dir) for p in mp_dir.rglob("*") if p.is_file()}
    made -= {Path("script.py"), Path("stdout.txt")}
    given = {Path(n) for n, target in script.inputs.items() if target is not None}  # inputs are not outputs
    pictures: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for rel in sorted(p for p in made if p.parts[0] != "shown" and not any(p.is_relative_to(g) for g in given)):
        a, b = mp_dir / rel, pp_dir / rel
        if not b.exists():
            result[str(rel)] = {"missing under posepipe": True}
        elif rel.suffix == ".csv":
            result[str(rel)] = compare_csv(a, b)
        elif rel.suffix in (".mp4", ".avi"):
            result[str(rel)] = compare_frames(video_frames(a), video_frames(b))
        elif rel.suffix in (".jpg", ".png"):  # pictures written one per input: compared as one set
            pictures.setdefault(str(rel.parent / f"*{rel.suffix}"), []).append((cv2.imread(str(a)), cv2.imread(str(b))))
        else:
            result[str(rel)] = {"identical": a.read_bytes() == b.read_bytes()}
    for pattern, pairs in pictures.items():
        result[pattern] = compare_frames([a for a, _ in pairs], [b for _, b in pairs])
    return result


def lossless_copy(video: Path, out: Path, seed: int) -> Path:
    """``video`` re-encoded losslessly (FFV1, BGR) as OpenCV decodes it; with ``seed`` > 0, the
    first frame changed by one grey level, up or down, on 1% of its pixels."""
    import av

    capture, container = cv2.VideoCapture(str(video)), av.open(str(out), "w")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    stream = None
    index = 0
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        if index == 0:
            bgr = perturbed(bgr, seed)
        if stream is None:
            stream = container.add_stream("ffv1", rate=round(fps))
            stream.width, stream.height, stream.pix_fmt = bgr.shape[1], bgr.shape[0], "bgr0"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(bgr, format="bgr24")))
        index += 1
    container.mux(stream.encode())
    container.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scripts", type=Path, required=True, help="folder holding <name>.py for each script")
    parser.add_argument("--python", default=str(ROOT / ".bench" / "scripts" / "bin" / "python"),
                        help="a Python with both mediapipe==0.10.21 and posepipe installed")
    parser.add_argument("--posepipe-python", help="run the posepipe side in this Python instead (another "
                        "version, say: MediaPipe 0.10.21 installs on Python 3.12 and older only)")
    parser.add_argument("--video", type=Path, default=STREET, help="the video the video scripts read (and the "
                        "fake camera plays); default: the shared street video")
    parser.add_argument("--only", nargs="*", help="names of the scripts to run (default: all)")
    parser.add_argument("--out", type=Path, help="keep each run's folder here (default: a temporary folder)")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--noise-runs", type=int, default=0, help="MediaPipe again on this many imperceptibly "
                        "changed copies of the video, for the floor of what can match (see above)")
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"these runs need the shared data at {SHARED}")
    sys.path.insert(0, str(ROOT))
    from posepipe.models.cpu import describe

    print(describe())
    work = args.out or Path(tempfile.mkdtemp(prefix="posepipe-real-scripts-"))
    work.mkdir(parents=True, exist_ok=True)
    copies = [lossless_copy(args.video, work / f"video-copy-{seed}.mkv", seed) for seed in range(args.noise_runs + 1)] \
        if args.noise_runs else []
    report = {}
    for script in SCRIPTS:
        if args.only and script.name not in args.only:
            continue
        path = args.scripts / f"{script.name}.py"
        if not path.is_file():
            raise SystemExit(f"{path} is missing: save {script.path} from {script.repo} at {script.commit} there")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != script.sha256:
            raise SystemExit(f"{path} is not the published file (SHA-256 {digest[:12]}, expected {script.sha256[:12]})")
        source = path.read_text(encoding="utf-8")
        runs = {}
        for runtime, text, python in (("mediapipe", source, args.python),
                                      ("posepipe", as_posepipe(source), args.posepipe_python or args.python)):
            runs[runtime] = run(script, text, python, work / script.name / runtime, args.timeout, args.video)
        report[script.name] = {"kind": script.kind, "repo": script.repo, "path": script.path,
                               "commit": script.commit, "runs": runs,
                               "compared": compare(script, work / script.name / "mediapipe",
                                                   work / script.name / "posepipe")}
        if copies and (script.camera or VIDEO in script.inputs.values()):
            floor = []
            for seed, copy in enumerate(copies):
                folder = work / script.name / f"mediapipe-copy-{seed}"
                run(script, source, args.python, folder, args.timeout, copy)
                floor.append(compare(script, work / script.name / "mediapipe", folder))
            report[script.name]["mediapipe_on_copies"] = {"unchanged": floor[0], "first_frame_changed": floor[1:]}
        print(json.dumps({script.name: report[script.name]}, indent=1, ensure_ascii=False), flush=True)
    (work / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"runs and report in {work}")


if __name__ == "__main__":
    main()
