"""Instance separation for nuclei (`train.instances`): the boundary target, its channel and its loss.

With `instances: boundary` a model has two sigmoid outputs, the foreground mask and the nucleus
boundaries, and evaluation decodes them into instances by a marker-controlled watershed
(`effunet.metrics.watershed_instances`). The boundary target (`effunet.boundary`, which the protocol
ceiling of `effunet.reference` shares; re-exported here) is made in the training input pipeline,
from the uint16 instance labels that `merge_masks` writes at native size (no prepared file changes, so runs without the option read exactly what they read before):

- at native size, a pixel is boundary if another value (background or another nucleus) lies within
  `width` training-size pixels of it, per axis (Chebyshev; the image edge is no border): a band on
  both sides of every nucleus outline, which covers the contact line between touching nuclei (the
  touching zone) and fills the gap between nuclei that almost touch;
- that native-size map is resized to the training size as a soft target, the fraction of each
  training pixel's area it covers (`effunet.data.images.resize_target`, as `targets: soft`).

Computing at native size and averaging by area puts the band exactly where the foreground target's
edges are (the foreground channel is the same native mask resized the same way), and keeps it about
2 x `width` training pixels wide whatever the native size (256 to 1388 px in DSB2018); a hard
(thresholded) 1-px band would break into dashes, and labels resized by nearest neighbour first would
drop small nuclei and move borders by up to half a pixel. The band is two-sided because a one-sided
(inner) band, once area-averaged, leaves rim pixels that are mostly nucleus and less than half band:
slivers that became hundreds of spurious markers on the true targets of the synthetic data. The
loss is the recipe's loss (`train.loss`) on each channel, the boundary channel weighted by
BOUNDARY_WEIGHT; training-size metrics read the foreground channel only.
"""

from __future__ import annotations

import numpy as np

from effunet.boundary import BOUNDARY_WIDTH, boundary_map, boundary_target
from effunet.data import images
from effunet.data.manifest import read_manifest
from effunet.errors import ConfigError, EffunetError
from effunet.layout import PreparedData

MODES = ("none", "boundary")
BOUNDARY_WEIGHT = 1.0  # of the boundary channel's loss, relative to the foreground channel's
__all__ = [
    "BOUNDARY_WIDTH",
    "BOUNDARY_WEIGHT",
    "MODES",
    "add_targets",
    "boundary_map",
    "boundary_target",
    "output_channels",
    "training_loss",
]


def output_channels(instances: str) -> int:
    """The model's outputs: 1 (the mask), 2 with `instances: boundary` (mask, boundary)."""
    _check_mode(instances)
    return 1 if instances == "none" else 2


def add_targets(data, prepared: PreparedData, instances: str, splits=("train", "val")):
    """`data` ((images, masks) per split, as `dataset.load_split` returns them) with the boundary
    target stacked onto the masks as a second channel where `instances` asks for it."""
    if output_channels(instances) == 1:
        return data
    if prepared.labels is None:
        raise ConfigError(
            f"config key train.instances: {instances!r} needs instance labels (DSB2018); {prepared.manifest} has none"
        )
    table = read_manifest(prepared.manifest)
    stacked = []
    for (split_images, masks), split in zip(data, splits, strict=True):
        ids = table.loc[table["split"] == split, "id"].tolist()
        if len(ids) != len(masks):
            raise EffunetError(f"{prepared.manifest}: {len(ids)} {split} images listed, {len(masks)} loaded")
        size = masks.shape[1:3]
        targets = [boundary_target(images.read_labels(prepared.label(i)), size) for i in ids]
        stacked.append((split_images, np.concatenate([masks, np.stack(targets)[..., None]], axis=-1)))
    return tuple(stacked)


def training_loss(loss: str, instances: str):
    """The recipe's loss (`train.loss`), per channel with `instances: boundary`
    (`losses.ChannelLoss`, the boundary channel weighted by BOUNDARY_WEIGHT)."""
    from effunet.training import losses  # Keras: only where a model is trained

    if output_channels(instances) == 1:
        return losses.make_loss(loss)
    return losses.ChannelLoss(loss, boundary_weight=BOUNDARY_WEIGHT)


def _check_mode(instances: str) -> None:
    if instances not in MODES:
        raise ConfigError(f"config key train.instances: must be one of {', '.join(MODES)}, got {instances!r}")
