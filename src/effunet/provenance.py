"""Which code shapes a model's training, as a short hash: a change to it reruns that model's jobs.

Snakemake tracks a rule's script but not the modules it imports. The train rule passes
`training_code_version(model)` as a param, so editing `models/unet.py` reruns the U-Net's training
and nothing else, while editing the decoder or the training loop reruns every model.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SHARED = ("models/registry.py", "models/decoder.py", "models/layers.py", "models/freeze.py",
          "models/runtime.py", "data/manifest.py")
OWN = {"unet": ("models/unet.py",)}
ENCODER_MODELS = ("models/encoders.py",)


def model_sources(model: str) -> list[Path]:
    """The package files that define `model` and how it is trained."""
    own = OWN.get(model, ENCODER_MODELS)
    return [PACKAGE / name for name in (*SHARED, *own)] + sorted((PACKAGE / "training").glob("*.py"))


@cache
def training_code_version(model: str) -> str:
    digest = hashlib.sha256()
    for path in model_sources(model):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]
