"""Prepare one data set at its training size: images, targets, regions and the split manifest."""

from pathlib import Path

from effunet.logs import run_logged


def main(smk):
    from effunet.data import formats
    from effunet.layout import PreparedData

    fov = Path(smk.output.fov) if hasattr(smk.output, "fov") else None
    prepared = PreparedData(
        Path(smk.output.manifest), Path(smk.output.images), Path(smk.output.masks), fov=fov, format=smk.params.format
    )
    labels = Path(smk.input.labels) if hasattr(smk.input, "labels") else None
    formats.get(smk.params.format).prepare(
        smk.input.raw, labels, prepared, dict(smk.params.settings), smk.wildcards.dataset, smk.threads
    )


if __name__ == "__main__":
    run_logged(snakemake.log[0], main, snakemake)  # noqa: F821 (injected by Snakemake)
