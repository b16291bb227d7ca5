"""Fetch one data set's source (URL, local archive or folder, or synthetic) into resources/raw/."""

from effunet.data.download import fetch
from effunet.logs import run_logged


def main(smk):
    # The format only matters to a synthetic source (which generator runs); read from the config so that
    # the historical data sets' downloads keep their params.
    fetch(dataset=smk.wildcards.dataset, source=smk.params.source, raw_dir=smk.output.raw,
          downloads_dir=smk.params.downloads, sha256=smk.params.sha256,
          synthetic_options=smk.params.synthetic, fmt=smk.config["datasets"][smk.wildcards.dataset]["format"])


if __name__ == "__main__":
    run_logged(snakemake.log[0], main, snakemake)  # noqa: F821 (injected by Snakemake)
