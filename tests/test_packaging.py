"""Files a user expects beside the code: the licence pyproject names and a citation file."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_license_file_is_the_licence_pyproject_declares():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]["text"]
    text = (ROOT / "LICENSE").read_text()
    assert declared == "MIT"
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text


def test_citation_file_has_the_required_fields_and_the_data_sets_papers():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    for key in ("cff-version", "message", "title", "authors"):  # required by CFF 1.2.0
        assert citation[key], key
    assert citation["license"] == "MIT"
    assert citation["version"] == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    references = citation["references"]
    for reference in references:
        assert reference["type"] and reference["title"] and reference["authors"]
    found = {(r["authors"][0].get("family-names"), r.get("journal"), r.get("year")) for r in references}
    assert ("Caicedo", "Nature Methods", 2019) in found
    assert ("Staal", "IEEE Transactions on Medical Imaging", 2004) in found


def test_every_rule_that_runs_code_has_the_conda_environment():
    """--sdm conda: every script rule names envs/effunet.yaml (snakemake --lint asks for it too)."""
    for rules in (ROOT / "workflow" / "rules").glob("*.smk"):
        text = rules.read_text()
        assert text.count("    script:\n") == text.count('    conda:\n        "../../envs/effunet.yaml"\n'), rules


def test_conda_environment_installs_this_checkout_from_where_snakemake_builds_it(tmp_path):
    """Snakemake copies the env file to .snakemake/conda/<hash>.yaml and runs `conda env create --file`
    on the copy; conda writes the pip entries to a requirements file beside it and runs
    `pip install -r` there. A relative `-e ..` would point into .snakemake/; ${EFFUNET_ROOT}, which the
    workflow sets to its repository, is expanded by pip. Emulated here with pip's dry run."""
    import os
    import subprocess
    import sys

    env = yaml.safe_load((ROOT / "envs/effunet.yaml").read_text())
    pip_entries = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    built = tmp_path / "work" / ".snakemake" / "conda"
    built.mkdir(parents=True)
    (built / "0123abcd.yaml").write_text((ROOT / "envs/effunet.yaml").read_text())
    requirements = built / "condaenv.requirements.txt"
    requirements.write_text("\n".join(pip_entries) + "\n")
    from effunet.config import export_repository_root

    assert "effunet.config.export_repository_root(workflow.basedir)" in (ROOT / "workflow/rules/common.smk").read_text()
    assert export_repository_root(ROOT / "workflow" / "..") == str(ROOT) == os.environ["EFFUNET_ROOT"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--report",
            "-",
            "-r",
            str(requirements),
        ],
        cwd=built,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "EFFUNET_ROOT": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    report = json.loads(result.stdout)
    [item] = report["install"]
    assert item["metadata"]["name"] == "effunet" and item["is_direct"]
    assert item["download_info"]["url"] == ROOT.as_uri() and item["download_info"]["dir_info"]["editable"]
