# Data half of the DAG: download -> merge masks (DSB2018) -> resize/convert -> prepared PNGs + manifest.


rule download:
    output:
        raw=directory(raw_dir("{dataset}")),
    log:
        "logs/download/{dataset}.log",
    params:
        source=dataset_param("source"),
        sha256=dataset_param("sha256"),
        synthetic=synthetic_options,
        downloads="resources/downloads/{dataset}",
    script:
        "../scripts/download.py"


rule merge_masks:
    input:
        raw=raw_dir("dsb2018"),
    output:
        labels=directory(prepared("dsb2018", "labels")),
    log:
        "logs/merge_masks/dsb2018.log",
    threads: config["threads"]["prepare"]
    script:
        "../scripts/merge_masks.py"


rule resize_dsb2018:
    input:
        raw=raw_dir("dsb2018"),
        labels=rules.merge_masks.output.labels,
    output:
        images=directory(prepared("dsb2018", "images")),
        masks=directory(prepared("dsb2018", "masks")),
        manifest=prepared("dsb2018", "manifest.csv"),
    log:
        "logs/resize/dsb2018.log",
    threads: config["threads"]["prepare"]
    params:
        size=dataset_setting("dsb2018", "image_size"),
        split=dataset_setting("dsb2018", "split"),
    script:
        "../scripts/resize_dsb2018.py"


rule convert_drive:
    input:
        raw=raw_dir("drive"),
    output:
        images=directory(prepared("drive", "images")),
        masks=directory(prepared("drive", "masks")),
        fov=directory(prepared("drive", "fov")),
        manifest=prepared("drive", "manifest.csv"),
    log:
        "logs/resize/drive.log",
    threads: config["threads"]["prepare"]
    params:
        size=dataset_setting("drive", "image_size"),
        split=dataset_setting("drive", "split"),
    script:
        "../scripts/convert_drive.py"
