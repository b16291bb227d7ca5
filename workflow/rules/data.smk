# Data half of the DAG: download -> instance labels (formats with instances) -> prepare -> prepared
# PNGs + manifest. What each step does is the data set's format's (effunet.data.formats); paths carry
# the source and preparation tags (effunet.layout), so configs share what they can.


rule download:
    output:
        raw=directory(RAW),
    log:
        data_log("download", "{dataset}", "{source}"),
    params:
        source=dataset_param("source"),
        sha256=dataset_param("sha256"),
        synthetic=synthetic_options,
        local=local_source_state,
        downloads=str(Layout.downloads("{dataset}")),
    conda:
        "../../envs/effunet.yaml"
    script:
        "../scripts/download.py"


rule merge_masks:
    # Native-size instance label images (DSB2018: one per-nucleus mask after another; a folder's labels/).
    input:
        raw=RAW,
    output:
        labels=directory(LABELS),
    log:
        data_log("merge_masks", "{dataset}", "{source}"),
    wildcard_constraints:
        dataset=datasets_where(instances=True),
    threads: config["threads"]["prepare"]
    params:
        format=dataset_param("format"),
        settings=label_settings,
    conda:
        "../../envs/effunet.yaml"
    script:
        "../scripts/merge_masks.py"


rule prepare:
    # Images and targets at the training size, the seeded split, the manifest.
    input:
        unpack(preparation_inputs),
    output:
        images=directory(prepared_pattern("images")),
        masks=directory(prepared_pattern("masks")),
        manifest=prepared_pattern("manifest"),
    log:
        data_log("prepare", "{dataset}", "{source}", "{variant}"),
    wildcard_constraints:
        dataset=datasets_where(region=False),
    threads: config["threads"]["prepare"]
    params:
        format=dataset_param("format"),
        settings=preparation_settings,
    conda:
        "../../envs/effunet.yaml"
    script:
        "../scripts/prepare.py"


use rule prepare as prepare_with_region with:
    # The same, with the scored region (DRIVE's field of view, a folder's roi/) at the training size.
    output:
        images=directory(prepared_pattern("images")),
        masks=directory(prepared_pattern("masks")),
        fov=directory(prepared_pattern("fov")),
        manifest=prepared_pattern("manifest"),
    wildcard_constraints:
        dataset=datasets_where(region=True),
