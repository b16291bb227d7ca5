"""Lint as CI runs it: ruff (lint and format check, configured in pyproject.toml), snakemake --lint."""

import shutil
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff(command):
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    result = subprocess.run([ruff, *command], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


# Every rule that runs a job names envs/effunet.yaml (docs/running.md#conda); the target rule `all` runs
# none and has no conda directive, which snakemake --lint reports: the only lint allowed.
ALLOWED_LINTS = {"Specify a conda environment or container for each rule."}


@pytest.mark.parametrize("configfile", ["config.yaml", "config/demo.yaml", "config/dsb2018-recipes.yaml"])
def test_snakemake_lint(tmp_path, configfile):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(ROOT / "Snakefile"),
            "-d",
            str(tmp_path),
            "--lint",
            "--configfile",
            str(ROOT / configfile),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    lints = {line.strip()[2:].rstrip(":") for line in output.splitlines() if line.startswith("    * ")}
    assert "Traceback" not in output and "Error" not in output, output[-3000:]
    assert lints <= ALLOWED_LINTS, output[-3000:]
    assert lints or "Congratulations" in output, output[-3000:]
