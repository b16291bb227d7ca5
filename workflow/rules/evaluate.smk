# Evaluate each run, plot it, score the reference rows, then aggregate all runs into the comparison
# table, statistics, claims and charts.


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
    conda:
        "../../envs/effunet.yaml"
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
        curves_svg=run_dir("plots/learning_curves.svg"),
        examples_svg=run_dir("plots/examples.svg"),
    log:
        "logs/plot/{dataset}/{model}/seed{seed}.log",
    conda:
        "../../envs/effunet.yaml"
    params:
        threshold=config["evaluate"]["threshold"],
    script:
        "../scripts/plot_run.py"


rule reference:
    input:
        manifest=prepared("{dataset}", "manifest.csv"),
        native=native_truth,
    output:
        reference=reference_file("{dataset}"),
    log:
        "logs/reference/{dataset}.log",
    conda:
        "../../envs/effunet.yaml"
    resources:
        mem_mb=8000,
        runtime=60,
    script:
        "../scripts/reference.py"


rule plot_curves:
    input:
        histories=dataset_runs("history.csv"),
        runs=dataset_runs("run.json"),
    output:
        curves=report(
            "results/plots/learning_curves_{dataset}.png",
            caption="../report/curves_overlay.rst",
            category="Learning curves",
            subcategory="{dataset}",
            labels={"model": "all models", "seed": "mean and range over seeds"},
        ),
        svg="results/plots/learning_curves_{dataset}.svg",
    log:
        "logs/plot_curves/{dataset}.log",
    conda:
        "../../envs/effunet.yaml"
    script:
        "../scripts/plot_curves.py"


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
        references=expand(reference_file("{dataset}"), dataset=DATASETS),
    output:
        table="results/comparison.csv",
        markdown="results/comparison.md",
        html=report(
            "results/comparison.html",
            caption="../report/comparison.rst",
            category="Comparison",
            labels={"figure": "tables: comparison, statistics, claims"},
        ),
        paired="results/paired_tests.csv",
        claims="results/claims.csv",
    log:
        "logs/aggregate.log",
    conda:
        "../../envs/effunet.yaml"
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
            labels={"figure": "test quality"},
        ),
        speed=report(
            "results/plots/training_speed.png",
            caption="../report/training_speed.rst",
            category="Comparison",
            labels={"figure": "training speed"},
        ),
        quality_svg="results/plots/comparison.svg",
        speed_svg="results/plots/training_speed.svg",
    log:
        "logs/plot_comparison.log",
    conda:
        "../../envs/effunet.yaml"
    script:
        "../scripts/plot_comparison.py"
