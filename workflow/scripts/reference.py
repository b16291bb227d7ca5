"""Score the reference rows of one data set: the protocol ceiling and (DRIVE) the second observer."""

from pathlib import Path

from effunet.logs import run_logged


def main(smk):
    from effunet.reference import reference

    reference(prepared_dir=Path(smk.input.manifest).parent, dataset_kind=smk.wildcards.dataset,
              dataset=smk.wildcards.dataset, out_json=smk.output.reference)


if __name__ == "__main__":
    run_logged(snakemake.log[0], main, snakemake)  # noqa: F821 (injected by Snakemake)
