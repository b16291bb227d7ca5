"""The GPU machine's Python, on a CPU (tests/test_gpu_check.py): modules it does not have cannot be imported.

``EFFUNET_BLOCKED_IMPORTS`` (comma-separated top-level names) are the modules of the packages installed
here that the GPU machine lacks (TensorFlow, MLflow, Snakemake, jsonschema...). Each is looked up only in
``EFFUNET_CARRIED_SITE``, the folder gpu_check.sh installs the carried wheels into, as there; anything
else fails with ModuleNotFoundError. On PYTHONPATH, Python imports this file at start-up.
"""

import importlib.abc
import importlib.machinery
import os
import sys

BLOCKED = frozenset(filter(None, os.environ.get("EFFUNET_BLOCKED_IMPORTS", "").split(",")))
CARRIED = os.environ.get("EFFUNET_CARRIED_SITE", "")


class GpuMachine(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if "." in name or name not in BLOCKED:
            return None  # a submodule comes from where its package came from
        spec = importlib.machinery.PathFinder.find_spec(name, [CARRIED]) if CARRIED else None
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r} (not on the GPU machine, nor carried)", name=name)
        return spec


sys.meta_path.insert(0, GpuMachine())
