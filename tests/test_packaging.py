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


def test_no_rule_points_at_a_conda_environment():
    """--sdm conda is not supported (README); a conda directive would promise an env that cannot build."""
    for rules in (ROOT / "workflow" / "rules").glob("*.smk"):
        assert "conda:" not in rules.read_text(), rules
