"""Runs one training job in its own process, as the workflow's train script does (used by tests)."""

import json
import logging
import sys
from pathlib import Path

from effunet.layout import PreparedData
from effunet.training import loop


def main(prepared_dir: str, out_dir: str, max_epochs: str, tracking_uri: str) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s: %(message)s")
    out = Path(out_dir)
    settings = loop.Settings(max_epochs=int(max_epochs), patience=50, batch_size=4, encoder_weights="none",
                             model_options={"base_filters": 4})
    summary = loop.train(PreparedData.in_folder(prepared_dir), "unet", 3, settings,
                         loop.Outputs(out / "model.keras", out / "history.csv", out / "run.json", out / "checkpoint"),
                         loop.Tracking(tracking_uri or None, "resume-test", "dsb2018", "train"), threads=1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main(*sys.argv[1:])
