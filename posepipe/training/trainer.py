"""The training loop behind ``posepipe train`` and ``posepipe distill``, and its trace.

A run directory holds everything a run makes, written as it goes:

- ``config.json``: the options, so ``--resume RUN_DIR`` needs nothing else;
- ``trace.csv`` / ``trace.json``: one row per epoch (epoch 0 = the model before training,
  validation only); ``trace.png``: loss and accuracy curves;
- ``weights/last.pt``: the full state after the last complete epoch (model, optimiser,
  schedule, trace), rewritten every epoch; ``weights/best.pt``: the epoch with the best
  validation PCK@0.1 (distilling: the lowest validation loss);
- ``model.onnx``: the best weights, with the original model's inputs and outputs, for
  ``--landmark-model``; a distilled student also gets ``model_int8.onnx``, quantised with
  the ranges in ``int8_ranges.json``, the ones its training simulated.

Every sample depends only on (seed, epoch, index) and the shuffling on (seed, epoch), so a
run resumed from ``last.pt`` continues exactly as if it had not stopped. A loss that stops
being finite ends the run with a message; ``last.pt`` then still holds the last good epoch.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..errors import PosepipeError
from ..models.graph import Graph, import_tflite
from ..analysis.labels import load_labels
from ..landmarks import MASK_OUTPUT
from ..models.runtime import WEIGHT_BOUND, Int8Ranges, quantize_int8
from . import objectives
from .data import Augmentation, CropDataset, split_people
from .network import GraphModule, export_onnx, residual_stream_taps, student_graph

STUDENT_CALIBRATION_CROPS = 48
TRACE_COLUMNS = ("epoch", "train_loss", "train_pck@0.05", "train_pck@0.1", "val_loss", "val_pck@0.05",
                 "val_pck@0.1", "lr", "seconds")


@dataclass
class TrainConfig:
    data: list[str]  # label files or `posepipe label` datasets to train on
    images: str | None = None  # where label files' image names are looked up
    val_data: list[str] = field(default_factory=list)  # held-out labels; else a split of `data`
    val_fraction: float = 0.2
    epochs: int = 10
    batch_size: int = 16
    lr: float | None = None  # default 1e-3 from scratch, else 1e-5: larger steps undo pretrained weights (fine-tuning or distilling)
    weight_decay: float = 1e-4
    from_scratch: bool = False
    distill: bool = False  # train the width-pruned student on the teacher's outputs and features
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    landmark_model: str | None = None  # the pretrained (teacher) .tflite; default MediaPipe's full model

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else 1e-3 if self.from_scratch else 1e-5


class TrainingDiverged(PosepipeError):
    """The loss stopped being finite."""


def _write_atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_trace(run_dir: Path, rows: list[dict]) -> None:
    """trace.csv, trace.json and trace.png from the rows so far."""
    def csv_writer(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, TRACE_COLUMNS)
            writer.writeheader()
            writer.writerows({k: ("" if row.get(k) is None else row[k]) for k in TRACE_COLUMNS} for row in rows)

    _write_atomic(run_dir / "trace.csv", csv_writer)
    _write_atomic(run_dir / "trace.json", lambda tmp: Path(tmp).write_text(json.dumps(rows, indent=1)))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, keys, title in ((loss_ax, ("train_loss", "val_loss"), "loss"),
                            (acc_ax, ("train_pck@0.1", "val_pck@0.1", "train_pck@0.05", "val_pck@0.05"), "PCK")):
        for key in keys:
            points = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points), marker="o", linestyle="-" if "0.05" not in key else "--", label=key)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    _write_atomic(run_dir / "trace.png", lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


class Trainer:
    """One run: ``Trainer(config, run_dir).fit(report)``; ``Trainer.resume(run_dir)``."""

    def __init__(self, config: TrainConfig, run_dir: str | Path, resuming: bool = False):
        from ..models.assets import resolve_models

        self.config, self.run_dir, self.resuming = config, Path(run_dir), resuming
        self.device = torch.device("cuda" if config.device == "auto" and torch.cuda.is_available()
                                   else "cpu" if config.device == "auto" else config.device)
        people = [p for path in config.data for p in load_labels(path, config.images)]
        if config.val_data:
            train, val = people, [p for path in config.val_data for p in load_labels(path, config.images)]
        else:
            train, val = split_people(people, config.val_fraction, config.seed)
        if not train:
            raise PosepipeError("no labelled person is left to train on")
        if not val:
            raise PosepipeError("no labelled person is left to validate on; give --val-data or more images")
        augmentation = Augmentation() if config.augment else None
        self.train_set = CropDataset(train, augmentation, seed=config.seed)
        self.val_set = CropDataset(val, None, seed=config.seed)

        graph: Graph = import_tflite(resolve_models(None, config.landmark_model)[1])
        outputs = [name for i, name in enumerate(graph.outputs) if i != MASK_OUTPUT]
        torch.manual_seed(config.seed)
        # Subnormal floats make CPU kernels crawl (seen: 20x slower epochs once weights shrink).
        torch.set_flush_denormal(True)
        self.teacher, self.taps, self.calibration, self.int8 = None, [], None, None
        if config.distill:
            self.teacher = GraphModule(graph, outputs=outputs).to(self.device).eval().requires_grad_(False)
            # The student is quantised on unaugmented crops spread evenly over the training set
            # (the first crops alone are often one video's: quantised on those, a student lost
            # 0.13 of held-out PCK@0.1 to int8, on spread crops 0.02-0.04), and pruned on those
            # and augmented copies of them: the varied crops rank channels for new people.
            spread = train[::max(1, len(train) // STUDENT_CALIBRATION_CROPS)][:STUDENT_CALIBRATION_CROPS]
            crops = CropDataset(spread, None, seed=config.seed)
            varied = CropDataset(spread, Augmentation(), seed=config.seed)
            self.calibration = np.stack([crops[i]["image"] for i in range(len(crops))])
            ranking = np.concatenate([self.calibration, np.stack([varied[i]["image"] for i in range(len(varied))])])
            graph = student_graph(graph, torch.from_numpy(ranking))
            self.taps = residual_stream_taps(graph)
        self.model = GraphModule(graph, from_scratch=config.from_scratch, seed=config.seed,
                                 outputs=outputs).to(self.device)
        if config.distill:
            # Quantisation-aware distillation: the student trains through the rounding of the
            # int8 network it ships as. Int8 alone moved MediaPipe's own model by a median 0.034
            # of a person's size on training crops; the stem-pruned student's int8 form tracked
            # the held-out video frames at PCK@0.1 0.74 untrained, 0.89 after 6 epochs so trained
            # (the float teacher 0.93).
            self.int8 = self._int8_ranges()
            self.model.simulate_int8(self.int8)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(config.epochs, 1))
        self.epoch = 0
        self.rows: list[dict] = []
        self.best: tuple[int, float] | None = None

    def _int8_ranges(self) -> Int8Ranges:
        """The student's int8 ranges: a resumed run's own, else calibrated on the pruned student."""
        saved = self.run_dir / "int8_ranges.json"
        if self.resuming and saved.is_file():  # a new run in an old folder calibrates afresh
            # a run begun before weights went to 7 bits goes on on the grid it will be exported in
            return replace(Int8Ranges.from_json(json.loads(saved.read_text())), weight_bound=WEIGHT_BOUND)
        with tempfile.TemporaryDirectory() as tmp:
            export_onnx(GraphModule(self.model.graph, outputs=self.model.outputs), Path(tmp) / "student.onnx")
            return quantize_int8(Path(tmp) / "student.onnx", Path(tmp) / "student_int8.onnx", self.calibration)

    # ------------------------------------------------------------------ state

    def _state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(), "epoch": self.epoch, "rows": self.rows, "best": self.best,
                "config": asdict(self.config)}

    def _save(self) -> None:
        weights = self.run_dir / "weights"
        weights.mkdir(parents=True, exist_ok=True)
        state = self._state()
        _write_atomic(weights / "last.pt", lambda tmp: torch.save(state, tmp))
        if self.best is not None and self.best[0] == self.epoch:
            _write_atomic(weights / "best.pt", lambda tmp: torch.save(state, tmp))

    @classmethod
    def resume(cls, run_dir: str | Path) -> "Trainer":
        run_dir = Path(run_dir)
        last = run_dir / "weights" / "last.pt"
        try:
            config = TrainConfig(**json.loads((run_dir / "config.json").read_text()))
            state = torch.load(last, map_location="cpu", weights_only=False)
        except FileNotFoundError:
            raise PosepipeError(f"{run_dir} has no run to resume (config.json and weights/last.pt are needed)") from None
        except (ValueError, TypeError, RuntimeError, EOFError) as exc:
            raise PosepipeError(f"{run_dir}: the saved run cannot be read ({str(exc).splitlines()[0]})") from None
        trainer = cls(config, run_dir, resuming=True)
        trainer.model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.schedule.load_state_dict(state["schedule"])
        trainer.epoch, trainer.rows = state["epoch"], state["rows"]
        trainer.best = tuple(state["best"]) if state["best"] else None
        return trainer

    # ------------------------------------------------------------------ epochs

    def _loader(self, dataset: CropDataset, shuffle: bool):
        dataset.set_epoch(self.epoch)
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + self.epoch)
        return torch.utils.data.DataLoader(dataset, batch_size=self.config.batch_size, shuffle=shuffle,
                                           generator=generator, num_workers=0)

    def _loss(self, images: torch.Tensor, batch: dict) -> tuple[dict, objectives.Outputs]:
        outputs, features = self.model.run(images, self.taps)
        out = objectives.Outputs.from_network(outputs)
        if self.teacher is None:
            return objectives.supervised_loss(out, batch), out
        with torch.no_grad():
            teacher_outputs, teacher_features = self.teacher.run(images, self.taps)
        return objectives.distillation_loss(out, objectives.Outputs.from_network(teacher_outputs), features,
                                            teacher_features), out

    def _pass(self, dataset: CropDataset, train: bool, progress=None) -> dict[str, float]:
        self.model.train(train)
        totals = {"loss": 0.0, "samples": 0, "landmarks": 0.0, **{f"pck@{t}": 0.0 for t in objectives.PCK_THRESHOLDS}}
        for step, batch in enumerate(self._loader(dataset, shuffle=train)):
            batch = {k: v.to(self.device) for k, v in batch.items()}
            with torch.set_grad_enabled(train):
                terms, out = self._loss(batch["image"], batch)
                loss = terms["total"]
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"the loss became {float(loss.detach())} in epoch {self.epoch}, step {step + 1}; training stopped, "
                        f"and {self.run_dir / 'weights' / 'last.pt'} keeps the last good epoch "
                        f"({self.epoch - 1}); try a lower learning rate")
                if train:
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
                    self.optimizer.step()
            n = len(batch["image"])
            totals["loss"] += float(loss.detach()) * n
            totals["samples"] += n
            with torch.no_grad():
                for key, value in objectives.pck_counts(out, batch).items():
                    totals[key] += value
            if progress is not None:
                progress(n)
        result = {"loss": totals["loss"] / max(totals["samples"], 1)}
        for t in objectives.PCK_THRESHOLDS:
            result[f"pck@{t}"] = totals[f"pck@{t}"] / max(totals["landmarks"], 1.0)
        return result

    def fit(self, report=None, progress_factory=None) -> list[dict]:
        """Train to ``config.epochs``; ``report(row)`` after each epoch; ``progress_factory(total,
        description)`` may return a callable advanced by samples. Writes as it goes."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(asdict(self.config), indent=1))
        if self.int8 is not None:
            (self.run_dir / "int8_ranges.json").write_text(json.dumps(self.int8.to_json()))
        make_progress = progress_factory or (lambda total, description: None)
        if self.epoch == 0:  # the starting point, so the curves show where training began
            start = time.perf_counter()
            val = self._pass(self.val_set, train=False)
            self.rows = [{"epoch": 0, "train_loss": None, "train_pck@0.05": None, "train_pck@0.1": None,
                          "val_loss": val["loss"], "val_pck@0.05": val["pck@0.05"], "val_pck@0.1": val["pck@0.1"],
                          "lr": self.optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - start}]
            write_trace(self.run_dir, self.rows)
            self._save()
            if report:
                report(self.rows[-1])
        while self.epoch < self.config.epochs:
            self.epoch += 1
            start = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            train = self._pass(self.train_set, train=True,
                               progress=make_progress(len(self.train_set), f"epoch {self.epoch}/{self.config.epochs}"))
            val = self._pass(self.val_set, train=False)
            self.schedule.step()
            row = {"epoch": self.epoch, "train_loss": train["loss"], "train_pck@0.05": train["pck@0.05"],
                   "train_pck@0.1": train["pck@0.1"], "val_loss": val["loss"], "val_pck@0.05": val["pck@0.05"],
                   "val_pck@0.1": val["pck@0.1"], "lr": lr, "seconds": time.perf_counter() - start}
            self.rows.append(row)
            measure = self._selection_measure(val)
            if self.best is None or (measure > self.best[1] if self.teacher is None else measure < self.best[1]):
                self.best = (self.epoch, measure)
            self._save()
            write_trace(self.run_dir, self.rows)
            if report:
                report(row)
        self.export()
        return self.rows

    def _selection_measure(self, val: dict[str, float]) -> float:
        """Training keeps the epoch with the highest validation PCK@0.1; distillation the one
        whose student copies the teacher best on the validation crops (the lowest distillation
        loss): copying is what a student is for, and PCK against a few labelled people swings
        by 0.1 from epoch to epoch while the loss moves smoothly."""
        return val["pck@0.1"] if self.teacher is None else val["loss"]

    def export(self) -> Path:
        """model.onnx from the best epoch's weights (the last ones when none was trained); for a
        student also model_int8.onnx, the same network quantised for CPUs."""
        best = self.run_dir / "weights" / "best.pt"
        module = self.model
        if best.is_file():
            module = GraphModule(self.model.graph, outputs=self.model.outputs)
            module.load_state_dict(torch.load(best, map_location="cpu", weights_only=False)["model"])
        target = self.run_dir / "model.onnx"
        export_onnx(module.cpu(), target)
        if self.int8 is not None:  # the student's deployable form: int8 for CPUs, as it was trained
            quantize_int8(target, self.run_dir / "model_int8.onnx", self.calibration, self.int8)
        self.model.to(self.device)
        return target


def format_row(row: dict) -> str:
    cell = lambda v, fmt: "" if v is None else format(v, fmt)  # noqa: E731
    return (f"{row['epoch']:>5}  {cell(row['train_loss'], '10.4f')}  {cell(row['train_pck@0.1'], '9.3f')}  "
            f"{cell(row['val_loss'], '8.4f')}  {cell(row['val_pck@0.1'], '7.3f')}  {cell(row['val_pck@0.05'], '8.3f')}"
            f"  {row['lr']:9.2e}  {row['seconds']:7.1f}")


TRACE_HEADER = "epoch  train loss  train PCK  val loss  val PCK  val PCK5        lr  seconds"

