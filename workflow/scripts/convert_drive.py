"""Convert DRIVE's TIFF images and GIF annotations and FOV masks to resized PNGs plus a manifest."""

from effunet.data.drive import convert
from effunet.logs import run_logged


def main(smk):
    convert(raw_dir=smk.input.raw, images_dir=smk.output.images, masks_dir=smk.output.masks,
            fov_dir=smk.output.fov, manifest_path=smk.output.manifest, size=smk.params.size,
            targets=smk.params.targets, workers=smk.threads, **smk.params.split)


if __name__ == "__main__":
    run_logged(snakemake.log[0], main, snakemake)  # noqa: F821 (injected by Snakemake)
