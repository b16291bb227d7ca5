# Evaluate each run, plot it, then aggregate all runs into the comparison table and charts.


rule evaluate:
    input:
        model=run_dir("model.keras"),
        run=run_dir("run.json"),
        manifest=prepared("{dataset}", "manifest.csv"),
        native=native_truth,
    output:
        metrics=run_dir("eval/metrics.json"),
        per_image=run_dir("eval/per_image.csv"),
        examples=run_dir("eval/examples.npz"),
    log:
        "logs/evaluate/{dataset}/{model}/seed{seed}.log",
    threads: config["threads"]["train"]
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        threshold=config["evaluate"]["threshold"],
    script:
        "../scripts/evaluate.py"


rule plot_run:
    input:
        history=run_dir("history.csv"),
        run=run_dir("run.json"),
        examples=run_dir("eval/examples.npz"),
    output:
        curves=report(
            run_dir("plots/learning_curves.png"),
            caption="../report/learning_curves.rst",
            category="Learning curves",
            subcategory="{dataset}",
            labels={"model": "{model}", "seed": "{seed}"},
        ),
        examples=report(
            run_dir("plots/examples.png"),
            caption="../report/examples.rst",
            category="Predictions",
            subcategory="{dataset}",
            labels={"model": "{model}", "seed": "{seed}"},
        ),
    log:
        "logs/plot/{dataset}/{model}/seed{seed}.log",
    params:
        threshold=config["evaluate"]["threshold"],
    script:
        "../scripts/plot_run.py"


rule aggregate:
    input:
        runs=expand(
            "results/{dataset}/{model}/seed{seed}/run.json",
            dataset=DATASETS,
            model=config["models"],
            seed=config["seeds"],
        ),
        metrics=expand(
            "results/{dataset}/{model}/seed{seed}/eval/metrics.json",
            dataset=DATASETS,
            model=config["models"],
            seed=config["seeds"],
        ),
    output:
        table="results/comparison.csv",
        markdown="results/comparison.md",
        html=report(
            "results/comparison.html",
            caption="../report/comparison.rst",
            category="Comparison",
        ),
        paired="results/paired_tests.csv",
    log:
        "logs/aggregate.log",
    script:
        "../scripts/aggregate.py"


rule plot_comparison:
    input:
        table=rules.aggregate.output.table,
    output:
        quality=report(
            "results/plots/comparison.png",
            caption="../report/comparison_chart.rst",
            category="Comparison",
        ),
        speed=report(
            "results/plots/training_speed.png",
            caption="../report/training_speed.rst",
            category="Comparison",
        ),
    log:
        "logs/plot_comparison.log",
    script:
        "../scripts/plot_comparison.py"
