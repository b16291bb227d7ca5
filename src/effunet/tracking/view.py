"""The runs table MLflow's UI opens for an experiment: `runs_view` (the headline test metrics as
columns, best first) saved as the shared view `VIEW_KEY` by `ensure_runs_view`, with the experiment
tagged as model training (`EXPERIMENT_KIND`); `store.prepare_store` and ``effunet ui`` set it."""

from __future__ import annotations

import json

from effunet.tracking.names import HEADLINE, TABLE_METRICS
from effunet.tracking.retry import with_retries

EXPERIMENT_KIND = "custom_model_development"
"""The experiment tag ``mlflow.experimentKind``: MLflow's UI then shows training runs, not GenAI traces."""

VIEW_KEY = "effunet-runs"
"""The shared view (experiment tag ``mlflow.sharedViewState.<key>``) that `ui.runs_url` opens."""


def runs_view(metrics: tuple[str, ...] | None = None) -> dict:
    """The runs table's view state as MLflow's UI stores a shared view: the headline test metrics as
    columns beside Dataset, Models and Source, sorted by the headline (best first)."""
    columns = [f"attributes.`{name}`" for name in ("Dataset", "Models", "Source")]
    columns += [f"metrics.`{key}`" for key in metrics or TABLE_METRICS]
    # The UI merges this with its defaults (time range, lifecycle filter, ...).
    return {
        "orderByKey": f"metrics.`{HEADLINE}`",
        "orderByAsc": False,
        "selectedColumns": columns,
        "runsHiddenMode": "SHOW_ALL",
    }


def ensure_runs_view(client, experiment_id: str) -> None:
    """Tag the experiment so MLflow's UI opens it as model training (``mlflow.experimentKind``) and
    offers the runs table with the headline metric (`runs_view`, the shared view `VIEW_KEY`)."""
    wanted = {
        "mlflow.experimentKind": EXPERIMENT_KIND,
        f"mlflow.sharedViewState.{VIEW_KEY}": json.dumps(runs_view(), separators=(",", ":")),
    }
    tags = with_retries(f"reading experiment {experiment_id}", client.get_experiment, experiment_id).tags
    for key, value in wanted.items():
        if key == "mlflow.experimentKind" and tags.get(key):
            continue  # the user's choice
        if tags.get(key) != value:
            with_retries(f"tagging experiment {experiment_id}", client.set_experiment_tag, experiment_id, key, value)
