# Data half of the DAG: download -> merge masks (DSB2018) -> resize/convert -> prepared PNGs + manifest.
# Paths carry the source and preparation tags (effunet.layout), so configs share what they can.


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
    input:
        raw=str(Layout.raw("dsb2018", "{source}")),
    output:
        labels=directory(LABELS),
    log:
        data_log("merge_masks", "dsb2018", "{source}"),
    threads: config["threads"]["prepare"]
    conda:
        "../../envs/effunet.yaml"
    script:
        "../scripts/merge_masks.py"


rule resize_dsb2018:
    input:
        raw=str(Layout.raw("dsb2018", "{source}")),
        labels=LABELS,
    output:
        images=directory(prepared_pattern("dsb2018", "images")),
        masks=directory(prepared_pattern("dsb2018", "masks")),
        manifest=prepared_pattern("dsb2018", "manifest"),
    log:
        data_log("prepare", "dsb2018", "{source}", "{variant}"),
    threads: config["threads"]["prepare"]
    params:
        size=dataset_setting("dsb2018", "image_size"),
        split=dataset_setting("dsb2018", "split"),
        targets=dataset_setting("dsb2018", "targets"),
    conda:
        "../../envs/effunet.yaml"
    script:
        "../scripts/resize_dsb2018.py"


rule convert_drive:
    input:
        raw=str(Layout.raw("drive", "{source}")),
    output:
        images=directory(prepared_pattern("drive", "images")),
        masks=directory(prepared_pattern("drive", "masks")),
        fov=directory(prepared_pattern("drive", "fov")),
        manifest=prepared_pattern("drive", "manifest"),
    log:
        data_log("prepare", "drive", "{source}", "{variant}"),
    threads: config["threads"]["prepare"]
    params:
        size=dataset_setting("drive", "image_size"),
        split=dataset_setting("drive", "split"),
        targets=dataset_setting("drive", "targets"),
    conda:
        "../../envs/effunet.yaml"
    script:
        "../scripts/convert_drive.py"
