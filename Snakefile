# effunet: does an Efficient-UNet segment medical images better and train faster than a U-Net?
# The DAG: download -> merge masks -> resize/convert -> (train -> evaluate -> plot -> aggregate).

import os

from snakemake.utils import min_version

import effunet.config

min_version("9.0")


# A --configfile given on the command line replaces config.yaml rather than being layered on it,
# so config/demo.yaml (or a user's config) is complete and means what it says.
if not workflow.overwrite_configfiles:
    # Snakemake's own message for a YAML syntax error names neither file nor line; this one does.
    if os.path.exists("config.yaml"):
        effunet.config.load_yaml("config.yaml")

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"


onstart:
    prepare_tracking()


rule all:
    default_target: True
    input:
        all_targets(),
