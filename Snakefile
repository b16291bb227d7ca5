# effunet: does an Efficient-UNet segment medical images better and train faster than a U-Net?
# The DAG: download -> merge masks -> resize/convert -> (train -> evaluate -> plot -> aggregate).

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"


rule all:
    input:
        all_targets(),
    default_target: True
