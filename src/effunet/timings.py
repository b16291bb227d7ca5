"""The timings of a config's earlier runs, as `effunet.estimate` reuses them: seconds per epoch, the first
epoch and the fixed time of a training job from `run.json`, and evaluation's seconds per image from
`eval/metrics.json` (inference) and the evaluate log (scoring). A run is reused only where it trained with
today's speed-relevant settings (`SPEED_KEYS`, the training size) on the same kind of device."""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from effunet import config as configs
from effunet import layout as layouts
from effunet.errors import EffunetError
from effunet.run import RunRecord, Settings

# Settings that change a run's speed: a run recorded with other values is not reused.
SPEED_KEYS = ("batch_size", "input", "inference", "instances", "mixed_precision", "augment", "model_options")
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


@dataclass
class Figures:
    """Seconds of one run kind's training and evaluation, and where they came from."""

    source: str
    device: str
    epoch_s: float
    first_epoch_s: float
    train_fixed_s: float
    eval_image_s: float | None
    epochs_seen: list[int] = field(default_factory=list)


def _log_facts(path: Path) -> dict:
    """The device ("cpu"/"gpu") and training size a train log names, and the seconds an evaluate log
    spent scoring (from its threshold line to its first summary line)."""
    facts: dict = {}
    if not path.exists():
        return facts
    stamps = {}
    for line in path.read_text(errors="replace").splitlines():
        if found := re.search(r"training on (.*?) with", line):
            facts["device"] = "gpu" if "GPU" in found.group(1) else "cpu"
        if found := re.search(r"loaded \d+ train images of (\d+)x(\d+)", line):
            facts["size"] = [int(found.group(1)), int(found.group(2))]
        stamp = LOG_TIME.match(line)
        for key, text in (("threshold", "effunet.evaluate: threshold"), ("scored", "(native, pooled)")):
            if stamp and text in line and key not in stamps:
                stamps[key] = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f")
    if len(stamps) == 2:
        facts["scoring_s"] = (stamps["scored"] - stamps["threshold"]).total_seconds()
    return facts


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise EffunetError(f"cannot read {path}: {error}") from None


def from_runs(
    config: dict, kind: tuple[str, str, str], train_images: int | None, device: str
) -> tuple[Figures | None, str]:
    """Figures from the earlier runs of `kind` (any seed) that used this device kind and today's speed
    settings, their seconds per epoch scaled to `train_images`; (None, why not) where there are none."""
    dataset, model, recipe = kind
    layout = layouts.Layout.of(config)
    wanted = asdict(
        Settings.from_params(
            {**configs.train_settings(config, dataset, recipe), "model_options": config["model_options"].get(model, {})}
        )
    )
    size = list(config["datasets"][dataset]["image_size"])
    used, refused = [], []
    for run_json in sorted(layout.run(dataset, model, "*", recipe).run.parent.parent.glob("seed*/run.json")):
        record, seed = RunRecord.read(run_json), run_json.parent.name.removeprefix("seed")
        facts = _log_facts(layout.run_log("train", dataset, model, seed, recipe))
        recorded = asdict(record.settings)  # every key, its default where the record leaves it out
        changed = [key for key in SPEED_KEYS if recorded[key] != wanted[key]]
        if facts.get("size", size) != size:
            changed.append(f"image_size {facts['size']}")
        if changed:
            refused.append(f"{run_json.parent} had other {', '.join(changed)}")
        elif facts.get("device", device) != device:
            refused.append(
                f"{run_json.parent} ran on the {facts['device'].upper()}, this estimate is for the {device.upper()}"
            )
        else:
            eval_facts = _log_facts(layout.run_log("evaluate", dataset, model, seed, recipe))
            metrics_path = layout.run(dataset, model, seed, recipe).metrics
            used.append((seed, record, facts, eval_facts, read_json(metrics_path) if metrics_path.exists() else None))
    if not used:
        return None, "; ".join(refused) or "no earlier run"
    scale = [train_images / r["train_images"] if train_images and r.get("train_images") else 1.0 for _, r, *_ in used]
    epoch_s = statistics.median(r["seconds_per_epoch"] * k for (_, r, *_), k in zip(used, scale))
    trace = statistics.median(max(0.0, r["first_epoch_seconds"] - r["seconds_per_epoch"]) for _, r, *_ in used)
    fixed = statistics.median(
        max(0.0, r["wall_seconds"] - r["first_epoch_seconds"] - (r["epochs_trained"] - 1) * r["seconds_per_epoch"])
        for _, r, *_ in used
    )
    per_image = [
        1 / m["inference_images_per_s"] + e["scoring_s"] / _scored(m)
        for _, _, _, e, m in used
        if m and "scoring_s" in e and m.get("inference_images_per_s")
    ]
    seeds = ", ".join(seed for seed, *_ in used)
    known = "device kind from its log" if all("device" in f for _, _, f, *_ in used) else "device not recorded"
    source = f"last runs (seed {seeds}; {known})" + ("" if per_image else "; evaluation measured now")
    return Figures(
        source,
        device,
        epoch_s,
        trace + epoch_s,
        fixed,
        statistics.median(per_image) if per_image else None,
        [r["epochs_trained"] for _, r, *_ in used],
    ), ""


def _scored(metrics: dict) -> int:
    return sum(split["native"]["images"] for split in metrics["splits"].values()) or 1
