# Training: one GPU-tagged, resumable job per data set x model x seed, each tracked in MLflow.


rule train:
    input:
        manifest=prepared("{dataset}", "manifest.csv"),
        images=prepared("{dataset}", "images"),
        masks=prepared("{dataset}", "masks"),
    output:
        model=run_dir("model.keras"),
        history=run_dir("history.csv"),
        run=run_dir("run.json"),
    log:
        "logs/train/{dataset}/{model}/seed{seed}.log",
    conda:
        "../../envs/effunet.yaml"
    threads: config["threads"]["train"]
    resources:
        gpu=config["train"]["gpus_per_job"],
        mem_mb=16000,
        runtime=720,
    params:
        settings=train_settings,
        code=training_code,
        checkpoint=run_dir("checkpoint"),
    script:
        "../scripts/train.py"
