"""Charts across models: test quality and training effort, from the comparison table."""

from effunet.logs import run_logged


def main(smk):
    from effunet.plots import comparison_chart, training_speed_chart

    comparison_chart(smk.input.table, ["dice", "iou", "accuracy", "mcc"], smk.output.quality,
                     "Test split, native resolution, mean ± std over seeds (DSB2018: per-image means; "
                     "DRIVE: pooled in the field of view); hatched: reference rows")
    training_speed_chart(smk.input.table, smk.output.speed)


if __name__ == "__main__":
    run_logged(snakemake.log[0], main, snakemake)  # noqa: F821 (injected by Snakemake)
