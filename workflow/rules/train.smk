# Training: one GPU-tagged, resumable job per data set x model x seed, each tracked in MLflow.


rule train:
    input:
        unpack(instance_labels),
        manifest=prepared_input("manifest"),
        images=prepared_input("images"),
        masks=prepared_input("masks"),
    output:
        model=run_file("model"),
        history=run_file("history"),
        run=run_file("run"),
    log:
        run_log("train"),
    threads: config["threads"]["train"]
    resources:
        gpu=config["train"]["gpus_per_job"],
        mem_mb=16000,
        runtime=720,
    params:
        settings=train_settings,
        code=training_code,
        checkpoint=run_file("checkpoint"),
        stale=made_from_model,
    conda:
        "../../envs/effunet.yaml"
    script:
        "../scripts/train.py"
