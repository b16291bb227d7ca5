"""Score the reference rows of one data set: the protocol ceiling and the second observer."""

from pathlib import Path

from effunet.logs import run_logged


def main(smk):
    from effunet.layout import PreparedData
    from effunet.reference import reference

    def optional(name):
        return Path(getattr(smk.input, name)) if hasattr(smk.input, name) else None

    prepared = PreparedData(Path(smk.input.manifest), Path(smk.input.images), Path(smk.input.masks),
                            fov=optional("fov"), labels=optional("labels"), format=smk.params.format)
    reference(prepared=prepared, dataset=smk.wildcards.dataset, out_json=smk.output.reference)


if __name__ == "__main__":
    run_logged(snakemake.log[0], main, snakemake)  # noqa: F821 (injected by Snakemake)
