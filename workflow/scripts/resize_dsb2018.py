"""Resize DSB2018 images and merged masks to the training size and write the split manifest."""

from effunet.data.dsb2018 import resize
from effunet.logs import run_logged


def main(smk):
    resize(raw_dir=smk.input.raw, labels_dir=smk.input.labels, images_dir=smk.output.images,
           masks_dir=smk.output.masks, manifest_path=smk.output.manifest, size=smk.params.size,
           targets=smk.params.targets, workers=smk.threads, **smk.params.split)


if __name__ == "__main__":
    run_logged(snakemake.log[0], main, snakemake)  # noqa: F821 (injected by Snakemake)
