# Evaluate each run, plot it, score the reference rows, then aggregate all runs into the comparison
# table, statistics, claims and charts.


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
    threads: config["threads"]["train"]
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        threshold=config["evaluate"]["threshold"],
        format=dataset_param("format"),
        trained_as=trained_as,
    conda:
        "../../envs/effunet.yaml"
    script:
        "../scripts/evaluate.py"


rule plot_run:
    input:
        history=run_file("history"),
        run=run_file("run"),
        examples=run_file("examples"),
    output:
        curves=report(
            str(run_files().plot("learning_curves")),
            caption="../report/learning_curves.rst",
            category="Learning curves",
            subcategory="{dataset}",
            labels={"model": "{model}", "recipe": "{recipe}", "seed": "{seed}"},
        ),
        examples=report(
            str(run_files().plot("examples")),
            caption="../report/examples.rst",
            category="Predictions",
            subcategory="{dataset}",
            labels={"model": "{model}", "recipe": "{recipe}", "seed": "{seed}"},
        ),
        curves_svg=svg(run_files().plot("learning_curves")),
        examples_svg=svg(run_files().plot("examples")),
    log:
        run_log("plot"),
    params:
        threshold=config["evaluate"]["threshold"],
        trained_as=trained_as,
    conda:
        "../../envs/effunet.yaml"
    script:
        "../scripts/plot_run.py"


rule reference:
    input:
        unpack(evaluation_inputs),
    output:
        reference=reference_file("{dataset}"),
    log:
        str(LAYOUT.log("reference_{dataset}")),
    params:
        format=dataset_param("format"),
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/effunet.yaml"
    script:
        "../scripts/reference.py"


rule plot_curves:
    input:
        histories=dataset_runs("history"),
        runs=dataset_runs("run"),
    output:
        curves=report(
            str(curves_overlay("{dataset}", "{recipe}")),
            caption="../report/curves_overlay.rst",
            category="Learning curves",
            subcategory="{dataset}",
            labels={
                "model": "all models",
                "recipe": "{recipe}",
                "seed": "mean and range over seeds",
            },
        ),
        svg=svg(curves_overlay("{dataset}", "{recipe}")),
    log:
        str(LAYOUT.log("plot_curves_{dataset}_{recipe}")),
    params:
        # The model of each run, in the order of the inputs: nothing parses it out of the paths.
        models=dataset_run_models,
    conda:
        "../../envs/effunet.yaml"
    script:
        "../scripts/plot_curves.py"


rule aggregate:
    input:
        runs=run_outputs("run"),
        metrics=run_outputs("metrics"),
        per_image=run_outputs("per_image"),
        references=[reference_file(dataset) for dataset in DATASETS],
    output:
        table=str(LAYOUT.comparison("csv")),
        markdown=str(LAYOUT.comparison("md")),
        html=report(
            str(LAYOUT.comparison("html")),
            caption="../report/comparison.rst",
            category="Comparison",
            labels={"figure": "tables: comparison, statistics, claims"},
        ),
        paired=str(LAYOUT.paired_tests),
        claims=str(LAYOUT.claims),
        cost=str(LAYOUT.cost),
    log:
        str(LAYOUT.log("aggregate")),
    params:
        # Who each run is, in the order of the inputs: nothing parses it out of the paths.
        runs=[vars(run) for run in RUNS],
        target_difference=config["compare"]["target_difference"],
        # What each data set's format says: headline weighting, and which study claims apply.
        datasets={name: vars(can) for name, can in CAPABILITIES.items()},
    conda:
        "../../envs/effunet.yaml"
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
            labels={"figure": "test quality"},
        ),
        speed=report(
            str(LAYOUT.comparison_plot("training_speed")),
            caption="../report/training_speed.rst",
            category="Comparison",
            labels={"figure": "training speed"},
        ),
        quality_svg=svg(LAYOUT.comparison_plot("comparison")),
        speed_svg=svg(LAYOUT.comparison_plot("training_speed")),
    log:
        str(LAYOUT.log("plot_comparison")),
    conda:
        "../../envs/effunet.yaml"
    script:
        "../scripts/plot_comparison.py"


rule plot_cost:
    input:
        cost=rules.aggregate.output.cost,
    output:
        cost=report(
            str(LAYOUT.comparison_plot("cost")),
            caption="../report/cost.rst",
            category="Comparison",
            labels={"figure": "quality vs cost"},
        ),
        cost_svg=svg(LAYOUT.comparison_plot("cost")),
    log:
        str(LAYOUT.log("plot_cost")),
    conda:
        "../../envs/effunet.yaml"
    script:
        "../scripts/plot_cost.py"
