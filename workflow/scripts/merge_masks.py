"""Merge DSB2018's per-nucleus masks into one uint16 instance label image per image."""

from effunet.data.dsb2018 import merge_masks
from effunet.logs import run_logged


def main(smk):
    merge_masks(raw_dir=smk.input.raw, labels_dir=smk.output.labels, workers=smk.threads)


if __name__ == "__main__":
    run_logged(snakemake.log[0], main, snakemake)  # noqa: F821 (injected by Snakemake)
