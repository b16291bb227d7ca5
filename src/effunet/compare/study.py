"""The study's findings with its published numbers, as data: the one place they are written.

Each finding is about the study's two models (Eff-UNet `MODEL` minus the U-Net `BASELINE`, a U-Net with a
ResNet50 encoder), on the data of one of the study's formats (`dsb2018`: its nuclei claims, `drive`: its
vessel claims). `effunet.compare.claims` measures each on the runs of the `study` recipe."""

from __future__ import annotations

from dataclasses import dataclass

STUDY_FORMATS = ("dsb2018", "drive")  # the study's data: its nuclei claims, its vessel claims
MODEL = "effunet-b0"  # the Eff-UNet a config's claims are about when it runs none (its first otherwise)
BASELINE = "resnet50-unet"  # the study's U-Net
STUDY_NOTE = (
    "The study stopped training early on the test loss; this workflow stops on the validation "
    "loss and never looks at the test split before evaluation."
)


@dataclass(frozen=True)
class Finding:
    """One finding of the study: Eff-UNet minus the U-Net is `expect`ed "higher", "lower" or "same" (within
    `margin` times the U-Net's mean); `measure` names how it is measured here (`effunet.compare.claims`)."""

    format: str  # the study's data set it is about (STUDY_FORMATS)
    finding: str  # as the table states it
    study: str  # what the study published
    expect: str
    unit: str
    decimals: int
    measure: str
    margin: float | None = None


# In the order the claims table lists them (per data set).
FINDINGS = (
    Finding("dsb2018", "Eff-UNet more accurate (test pixel accuracy)", "higher accuracy", "higher", "accuracy", 4,
            "accuracy"),
    Finding("dsb2018", "Eff-UNet more accurate (test Dice)", "higher accuracy", "higher", "Dice", 4, "dice"),
    Finding("dsb2018", "Eff-UNet's best epoch earlier", "36 vs 69", "lower", "epochs", 1, "best_epoch"),
    Finding("dsb2018", "test loss: Eff-UNet higher", "0.0912 vs 0.0638", "higher", "loss", 4, "test_loss"),
    Finding("drive", "Eff-UNet generalises better (train − test Dice gap)", "better", "lower", "Dice", 4,
            "dice_gap"),
    Finding("drive", "test loss: Eff-UNet higher", "0.3011 vs 0.2552", "higher", "loss", 4, "test_loss"),
    Finding("drive", "best epoch about the same (within 20%)", "about the same", "same", "epochs", 1, "best_epoch",
            margin=0.2),
    Finding("dsb2018", "U-Net merges touching nuclei (AP gain from splitting)", "U-Net merges", "lower", "AP", 4,
            "ap_gain"),
    Finding("dsb2018", "U-Net merges touching nuclei (nuclei missed per image)", "U-Net merges", "lower", "nuclei",
            2, "nuclei_missed"),
)  # fmt: skip
