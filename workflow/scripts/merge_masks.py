"""Write one data set's native-size uint16 instance label images (DSB2018 merges its per-nucleus masks)."""

from effunet.data import formats
from effunet.logs import run_logged


def main(smk):
    formats.get(smk.params.format).write_labels(
        smk.input.raw, smk.output.labels, dict(smk.params.settings), smk.wildcards.dataset, smk.threads
    )


if __name__ == "__main__":
    run_logged(snakemake.log[0], main, snakemake)  # noqa: F821 (injected by Snakemake)
