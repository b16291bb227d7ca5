# Evaluate each run, plot it, then aggregate all runs into the comparison table and charts.


rule evaluate:
    input:
        unpack(evaluation_inputs),
        model=run_file("model"),
        run=run_file("run"),
    output:
        metrics=run_file("metrics"),
        per_image=run_file("per_image"),
        examples=run_file("examples"),
    log:
        run_log("evaluate"),
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
        history=run_file("history"),
        run=run_file("run"),
        examples=run_file("examples"),
    output:
        curves=report(
            str(LAYOUT.run("{dataset}", "{model}", "{seed}").plot("learning_curves")),
            caption="../report/learning_curves.rst",
            category="Learning curves",
            subcategory="{dataset}",
            labels={"model": "{model}", "seed": "{seed}"},
        ),
        examples=report(
            str(LAYOUT.run("{dataset}", "{model}", "{seed}").plot("examples")),
            caption="../report/examples.rst",
            category="Predictions",
            subcategory="{dataset}",
            labels={"model": "{model}", "seed": "{seed}"},
        ),
    log:
        run_log("plot"),
    conda:
        "../../envs/effunet.yaml"
    params:
        threshold=config["evaluate"]["threshold"],
    script:
        "../scripts/plot_run.py"


rule aggregate:
    input:
        runs=run_outputs("run"),
        metrics=run_outputs("metrics"),
        per_image=run_outputs("per_image"),
    output:
        table=str(LAYOUT.comparison("csv")),
        markdown=str(LAYOUT.comparison("md")),
        html=report(
            str(LAYOUT.comparison("html")),
            caption="../report/comparison.rst",
            category="Comparison",
        ),
        paired=str(LAYOUT.paired_tests),
    log:
        str(LAYOUT.log("aggregate")),
    conda:
        "../../envs/effunet.yaml"
    params:
        # Who each run is, in the order of the inputs: nothing parses it out of the paths.
        runs=[vars(run) for run in RUNS],
    script:
        "../scripts/aggregate.py"


rule plot_comparison:
    input:
        table=rules.aggregate.output.table,
    output:
        quality=report(
            str(LAYOUT.comparison_plot("comparison")),
            caption="../report/comparison_chart.rst",
            category="Comparison",
        ),
        speed=report(
            str(LAYOUT.comparison_plot("training_speed")),
            caption="../report/training_speed.rst",
            category="Comparison",
        ),
    log:
        str(LAYOUT.log("plot_comparison")),
    conda:
        "../../envs/effunet.yaml"
    script:
        "../scripts/plot_comparison.py"
