"""Every link and every command in the documentation points at something that exists.

The documents are README.md, CHANGELOG.md, docs/*.md, benchmarks/README.md and config/README.md.
Checked in each:

- relative links `[text](path#anchor)` (images too): the file exists; an anchor names a heading of
  the target Markdown file (GitHub's slugs);
- repository paths in code (`benchmarks/x.py`, `config/*.yaml`, `workflow/...`, `src/effunet/...`,
  `tests/...`, `profiles/...`, `envs/...`, `docs/...`, `.ci/...`): they exist (globs match something);
- `effunet.<module>[.<name>]` in code: the module exists under src/effunet/ and defines the name;
- dotted config keys in backticks whose first part is a top-level key (`train.loss`,
  `datasets.<name>.split.seed`): the schema (workflow/schemas/config.schema.yaml) has the key, with
  `<placeholder>` and `*` standing for any name;
- commands in code blocks and backticks: `effunet <subcommand> --flags` against the real argparse
  parser (effunet.cli), `snakemake --flags` against Snakemake's own parser (the `--configfile` file
  and `--workflow-profile` folder exist, rule names after `--until`/`--forcerun` are rules),
  `python benchmarks/x.py --flags` against the script's add_argument strings, `python -m effunet...`
  against the modules, `pytest -m marker` against pyproject's markers, `pip install '.[extra]'`
  against pyproject's extras.
- commits named in inline code (`a0f0b53`, as CHANGELOG.md cites them): they exist in the
  repository's history (not checked in a shallow clone).

Paths a reader substitutes are placeholders and are not checked: anything with `<...>`, `{...}` or
`...`, and names starting `my-`, `my_`, `path/to/` or `/path/to/`.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
PATH_PREFIXES = ("benchmarks/", "config/", "workflow/", "src/effunet/", "tests/", "profiles/", "envs/", "docs/", ".ci/")
FILE_SUFFIXES = {"py", "yaml", "yml", "json", "csv", "md", "smk", "keras", "png", "svg", "npz", "log", "db", "html"}
FILE_SUFFIXES |= {"txt", "zip", "toml", "sh", "tar", "gz", "cff", "log"}
RULE_OPTIONS = {"--until", "-U", "--forcerun", "-R", "--omit-from", "-O", "--allowed-rules", "--forceall"}
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console"}


def documents() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
    extra = [ROOT / "benchmarks" / "README.md", ROOT / "config" / "README.md"]
    return found + [path for path in extra if path.exists()]


def placeholder(text: str) -> bool:
    return bool(re.search(r"<[^>]*>|\{[^}]*\}|\.\.\.|…", text)) or text.startswith(
        ("my-", "my_", "path/to/", "/path/to/")
    )


# --- Markdown ---------------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: links and emphasis dropped, lower case, punctuation removed."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def split_markdown(text: str):
    """(prose lines, code blocks) with line numbers: prose as [(n, line)], blocks as (n, language, lines)."""
    prose, blocks, block = [], [], None
    for number, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"\s*(```+|~~~+)\s*([\w+-]*)", line)
        if fence and block is None:
            block = (number, fence.group(2).lower(), [])
        elif fence and block is not None:
            blocks.append(block)
            block = None
        elif block is not None:
            block[2].append((number, line))
        else:
            prose.append((number, line))
    return prose, blocks


def anchors(path: Path, text: str | None = None) -> set[str]:
    prose, _ = split_markdown(path.read_text(encoding="utf-8") if text is None else text)
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose:
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def check_links(doc: Path, prose) -> list[str]:
    own = anchors(doc, "\n".join(line for _, line in prose))
    problems = []
    for number, line in prose:
        for target in re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            path = (doc.parent / file_part).resolve() if file_part else doc
            if file_part and not path.exists():
                problems.append(f"{doc.name}:{number}: link to a missing file: {target}")
            elif anchor and path.suffix == ".md" and anchor not in (anchors(path) if file_part else own):
                problems.append(f"{doc.name}:{number}: link to a missing heading: {target}")
    return problems


# --- code: paths, modules, config keys --------------------------------------------------------------


def code_texts(prose, blocks):
    """(line number, text) of every inline code span and every code block line."""
    for number, line in prose:
        for span in re.findall(r"`([^`]+)`", line):
            yield number, span
    for _, _, lines in blocks:
        yield from lines


def tokens(text: str) -> list[str]:
    return [token.strip("\"'`,;:()[]") for token in text.split()]


def check_paths(doc: Path, texts) -> list[str]:
    problems = []
    for number, text in texts:
        for token in tokens(text):
            token, _, test = token.rstrip(".").partition("::")
            if not token.startswith(PATH_PREFIXES) or placeholder(token) or "=" in token:
                continue
            if not (list(ROOT.glob(token)) if "*" in token else (ROOT / token).exists()):
                problems.append(f"{doc.name}:{number}: no such file in the repository: {token}")
            elif test and not defines((ROOT / token).read_text(encoding="utf-8"), test.split("::")[-1].split("[")[0]):
                problems.append(f"{doc.name}:{number}: {token} has no test {test}")
    return problems


def defines(source: str, name: str) -> bool:
    """Whether a module's source defines or imports `name` (def, class, assignment, import)."""
    if re.search(rf"^\s*(async\s+)?(def|class)\s+{name}\b|^\s*{name}\s*[:=]", source, re.M):
        return True
    imports = re.findall(r"^\s*(?:from\s+\S+\s+)?import\s+(\([^)]*\)|[^\n]*)", source, re.M)
    return any(re.search(rf"\b{name}\b", names) for names in imports)


def module_problem(dotted: str) -> str | None:
    """None when effunet.a.b[.name[.attr]] is a module under src/effunet/ (and defines name, attr)."""
    parts = dotted.split(".")[1:]
    here = ROOT / "src" / "effunet"
    while parts and ((here / parts[0]).is_dir() or (here / f"{parts[0]}.py").exists()):
        here = here / parts.pop(0)
    module = here / "__init__.py" if here.is_dir() else here.with_suffix(".py")
    if not parts:
        return None
    source = module.read_text(encoding="utf-8")
    if not defines(source, parts[0]):
        return f"{dotted}: {module.relative_to(ROOT)} defines no {parts[0]}"
    if len(parts) > 1 and not defines(source, parts[1]) and not re.search(rf"\b{parts[1]}\b", source):
        return f"{dotted}: {module.relative_to(ROOT)} has no {parts[1]}"
    return None


def check_modules(doc: Path, texts) -> list[str]:
    problems = []
    for number, text in texts:
        for dotted in re.findall(r"(?<![\w/.-])effunet(?:\.[A-Za-z_]\w*)+", text):
            problem = module_problem(dotted.rstrip("."))
            if problem:
                problems.append(f"{doc.name}:{number}: {problem}")
    return problems


@cache
def schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))


def resolve(node: dict) -> list[dict]:
    """A schema node and every branch it may take ($ref, allOf, anyOf, oneOf, if/then/else)."""
    if not isinstance(node, dict):
        return []
    found = [node]
    if "$ref" in node:
        target = schema()
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        found += resolve(target)
    for key in ("allOf", "anyOf", "oneOf"):
        for branch in node.get(key, []):
            found += resolve(branch)
    for key in ("then", "else", "items"):
        found += resolve(node.get(key))
    return found


def children(node: dict, name: str) -> list[dict]:
    wildcard = name == "*" or placeholder(name)
    found = []
    for branch in resolve(node):
        properties = branch.get("properties", {})
        if wildcard:
            found += list(properties.values())
        elif name in properties:
            found.append(properties[name])
        for pattern, sub in branch.get("patternProperties", {}).items():
            if wildcard or re.search(pattern, name):
                found.append(sub)
        if isinstance(branch.get("additionalProperties"), dict):
            found.append(branch["additionalProperties"])
    return found


def key_exists(key: str) -> bool:
    nodes = [schema()]
    for part in key.split("."):
        nodes = [child for node in nodes for child in children(node, part)]
        if not nodes:
            return False
    return True


def check_keys(doc: Path, prose) -> list[str]:
    top = {key for key, node in schema()["properties"].items() if any(children(node, "*"))}
    problems = []
    for number, line in prose:
        for span in re.findall(r"`([^`]+)`", line):
            for token in tokens(span):
                token = token.split("=")[0].rstrip(".")
                parts = token.split(".")
                if len(parts) < 2 or parts[0] not in top or parts[-1] in FILE_SUFFIXES:
                    continue
                if not re.fullmatch(r"[\w<>*-]+(\.[\w<>*-]+)+", token):
                    continue
                if not key_exists(token):
                    problems.append(f"{doc.name}:{number}: no config key {token} in {SCHEMA.relative_to(ROOT)}")
    return problems


# --- commands ---------------------------------------------------------------------------------------


@cache
def effunet_parser():
    from effunet.cli import _parser

    return _parser()


@cache
def snakemake_options() -> frozenset[str]:
    from snakemake.cli import get_argument_parser

    return frozenset(get_argument_parser()._option_string_actions)


@cache
def rule_names() -> frozenset[str]:
    text = "\n".join(path.read_text() for path in [ROOT / "Snakefile", *(ROOT / "workflow" / "rules").glob("*.smk")])
    pairs = re.findall(r"^(?:rule|checkpoint)\s+(\w+)\s*:|^use rule \w+ as (\w+)", text, re.M)
    return frozenset(name for pair in pairs for name in pair if name)


@cache
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def option(token: str) -> str | None:
    return token.split("=")[0] if re.match(r"--?[A-Za-z]", token) else None


def check_effunet(words: list[str]) -> list[str]:
    parser = effunet_parser()
    subparsers = next(action for action in parser._actions if action.choices and hasattr(action, "_name_parser_map"))
    if len(words) < 2:  # the command's name alone
        return []
    if words[1].startswith("-"):
        return [] if option(words[1]) in parser._option_string_actions else [f"effunet has no option {words[1]}"]
    if words[1] not in subparsers.choices:
        return [f"effunet has no subcommand {words[1]}"]
    known = subparsers.choices[words[1]]._option_string_actions
    return [
        f"effunet {words[1]} has no option {word}" for word in words[2:] if option(word) and option(word) not in known
    ]


def check_snakemake(words: list[str]) -> list[str]:
    problems = []
    for position, word in enumerate(words[1:], 1):
        flag = option(word)
        if not flag:
            continue
        if flag not in snakemake_options():
            problems.append(f"snakemake has no option {word}")
            continue
        values = []
        for value in words[position + 1 :]:
            if option(value):
                break
            values.append(value)
        if flag in ("--configfile", "--configfiles"):
            problems += [
                f"--configfile {v}: no such file" for v in values if not placeholder(v) and not (ROOT / v).is_file()
            ]
        if flag == "--workflow-profile":
            problems += [
                f"--workflow-profile {v}: no such folder" for v in values[:1] if v != "none" and not (ROOT / v).is_dir()
            ]
        if flag in RULE_OPTIONS:
            problems += [f"{flag} {v}: no such rule" for v in values if not placeholder(v) and v not in rule_names()]
    return problems


def check_python(words: list[str]) -> list[str]:
    if len(words) > 2 and words[1] == "-m" and words[2].startswith("effunet"):
        module = ROOT / "src" / Path(*words[2].split("."))
        if not (module.with_suffix(".py").exists() or (module / "__main__.py").exists()):
            return [f"python -m {words[2]}: no such module"]
        return []
    scripts = [word for word in words[1:2] if word.endswith(".py")]
    if not scripts or placeholder(scripts[0]):
        return []
    script = ROOT / scripts[0]
    if not script.exists():
        return [f"no such script: {scripts[0]}"]
    source = script.read_text(encoding="utf-8")
    return [
        f"{scripts[0]} has no option {word}"
        for word in words[2:]
        if option(word) and not re.search(rf"add_argument\([^)]*[\"']{re.escape(option(word))}[\"']", source)
    ]


def check_pytest(words: list[str]) -> list[str]:
    markers = {line.split(":")[0].strip() for line in pyproject()["tool"]["pytest"]["ini_options"]["markers"]}
    problems = []
    for position, word in enumerate(words[1:], 1):
        if word == "-m" and position + 1 < len(words):
            for marker in re.findall(r"\w+", words[position + 1]):
                if marker not in {"and", "or", "not"} and marker not in markers:
                    problems.append(f"pytest -m: no marker {marker} in pyproject.toml")
    return problems


def check_pip(words: list[str]) -> list[str]:
    extras = set(pyproject()["project"]["optional-dependencies"])
    problems = []
    for word in words:
        for extra in re.findall(r"^\.\[([\w,-]+)\]$", word)[:1]:
            problems += [
                f"pip install: no extra {name} in pyproject.toml" for name in extra.split(",") if name not in extras
            ]
    return problems


CHECKERS = {"effunet": check_effunet, "snakemake": check_snakemake, "python": check_python, "python3": check_python}
CHECKERS |= {"pytest": check_pytest, "pip": check_pip}


def commands(text: str) -> list[list[str]]:
    """The simple commands of a shell line (split at &&, ||, ; and |), as words; [] if it does not parse."""
    text = re.sub(r"(^|\s)#.*$", "", text.strip().removeprefix("$ "))
    try:
        words = [word.lstrip("[") if "[" in word.lstrip("[") else word.strip("[]") for word in shlex.split(text)]
    except ValueError:
        return []
    found, current = [], []
    for word in words + ["&&"]:
        if word in ("&&", "||", ";", "|"):
            found += [current] if current else []
            current = []
        elif word:
            current.append(word)
    return found


def check_commands(doc: Path, prose, blocks) -> list[str]:
    lines = [(number, span) for number, line in prose for span in re.findall(r"`([^`]+)`", line)]
    for _, language, block in blocks:
        if language not in SHELL_BLOCKS:
            continue
        joined, start = "", None
        for number, line in block:
            start = start or number
            joined += line.rstrip("\\") + " "
            if not line.rstrip().endswith("\\"):
                lines.append((start, joined))
                joined, start = "", None
    problems = []
    for number, line in lines:
        for words in commands(line):
            checker = CHECKERS.get(words[0])
            if checker and not any(placeholder(word) and word.startswith("-") for word in words):
                problems += [f"{doc.name}:{number}: {problem}" for problem in checker(words)]
    return problems


@cache
def history() -> bool:
    """Whether the checkout has the full git history (not a shallow or exported copy)."""
    import subprocess

    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--is-shallow-repository"], capture_output=True, text=True
    )
    return done.returncode == 0 and done.stdout.strip() == "false"


def commit_exists(name: str) -> bool:
    import subprocess

    done = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{name}^{{commit}}"], capture_output=True)
    return done.returncode == 0


def check_commits(doc: Path, prose) -> list[str]:
    """Commits named in inline code (`a0f0b53`: 7 to 40 hex digits, a letter and a digit among them)."""
    if not history():
        return []
    problems = []
    for number, line in prose:
        for name in re.findall(r"`([0-9a-f]{7,40})`", line):
            if re.search(r"[a-f]", name) and re.search(r"[0-9]", name) and not commit_exists(name):
                problems.append(f"{doc.name}:{number}: no commit {name} in this repository")
    return problems


def check(doc: Path, text: str | None = None) -> list[str]:
    """Every problem found in one Markdown file, each as 'file:line: what'."""
    prose, blocks = split_markdown(doc.read_text(encoding="utf-8") if text is None else text)
    texts = list(code_texts(prose, blocks))
    return (
        check_links(doc, prose)
        + check_paths(doc, texts)
        + check_modules(doc, texts)
        + check_keys(doc, prose)
        + check_commands(doc, prose, blocks)
        + check_commits(doc, prose)
    )


# --- tests ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", documents(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_link_path_key_and_command_exists(doc):
    assert doc.exists(), f"{doc.relative_to(ROOT)} is missing"
    problems = check(doc)
    assert not problems, "\n".join(problems)


def module_map(text: str) -> dict[str, str]:
    """docs/architecture.md's map of the package: {entry: its text}, from the first code block after
    'The package, `src/effunet/`'. An entry starts at the block's left margin (`run.py`, `data/`); one
    whose names end in a comma goes on on the next line (`estimate.py, timings.py,` / `throughput.py`)."""
    block = text.split("The package, `src/effunet/`", 1)[1].split("```", 2)[1]
    entries: dict[str, str] = {}
    name = ""
    for line in block.splitlines()[1:]:
        head, _, rest = line.partition("  ")
        if head.strip() and not line.startswith(" "):
            if name.endswith(","):
                entries[f"{name} {head.strip()}"] = entries.pop(name)
                name = f"{name} {head.strip()}"
            else:
                name = head.strip()
                entries[name] = ""
        entries[name] += " " + rest.strip()
    return entries


def map_problems(text: str, package: Path) -> list[str]:
    """What the map gets wrong about `package`: a module it leaves out (a top-level module by its file
    name, a subpackage's module by its name in the subpackage's entry), or a file or folder it names
    that does not exist."""
    entries = module_map(text)
    names = {name for entry in entries for name in re.findall(r"\w+\.py|\w+/", entry)}
    problems = [f"names {name}, which does not exist" for name in sorted(names) if not (package / name).exists()]
    for module in sorted(package.rglob("*.py")):
        relative = module.relative_to(package)
        if module.stem in ("__init__", "__main__") or "__pycache__" in relative.parts:
            continue
        if len(relative.parts) == 1:
            problems += [] if module.name in names else [f"leaves out {relative}"]
            continue
        entry = next((body for name, body in entries.items() if f"{relative.parts[0]}/" in name), "")
        if not re.search(rf"(?<![\w.]){module.stem}\b", entry):
            problems.append(f"leaves out {relative}")
    return problems


def test_the_module_map_names_every_module():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    problems = map_problems(text, ROOT / "src" / "effunet")
    assert not problems, "docs/architecture.md's module map (The code): " + "; ".join(problems)


def test_the_module_map_check_finds_what_is_wrong(tmp_path):
    for name in ("a.py", "b.py", "pkg/__init__.py", "pkg/one.py", "pkg/two.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    text = "The package, `src/effunet/`:\n\n```\na.py, b.py     what\npkg/           one (x), and more\n```\n"
    assert map_problems(text, tmp_path) == ["leaves out pkg/two.py"]
    assert map_problems(text.replace("one (x)", "one (x), two"), tmp_path) == []
    assert map_problems(text.replace("a.py, ", ""), tmp_path) == ["leaves out a.py", "leaves out pkg/two.py"]
    assert map_problems(text.replace("b.py ", "b.py, c.py "), tmp_path) == [
        "names c.py, which does not exist",
        "leaves out pkg/two.py",
    ]


def test_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    ci_command = (ROOT / ".ci" / "run").read_text().split("# The README's test command, verbatim:\n")[1].splitlines()[0]
    assert ci_command in text, "README's test command differs from the one .ci/run runs"
    demo = "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && snakemake --cores 2 --resources gpu=2 --configfile config/demo.yaml"
    assert demo in text
    headings = anchors(ROOT / "README.md")
    for topic in ("the-demo", "the-real-study", "your-own-data", "slurm", "the-mlflow-ui", "predict"):
        assert topic in headings and f"(#{topic})" in text, f"README has no section {topic} in its contents"


BAD = """# Title

## A section

[ok](#a-section) [ok too](docs/results.md) [gone](docs/nowhere.md) [bad anchor](#no-such-heading)
[bad anchor elsewhere](README.md#no-such-heading) [web](https://example.org/x.md)

Set `train.loss` and `datasets.<name>.split.seed`; not `train.no_such_key` nor `datasets.cells.colour`.
Modules `effunet.config.train_settings` and `effunet.nowhere`, `effunet.config.no_such_function`.
Run `effunet predict --threshold 0.3 --no-such-flag` or `effunet frobnicate`.

```bash
snakemake --cores 2 --configfile config/nowhere.yaml --no-such-snakemake-flag
snakemake --configfile config/demo.yaml --forcerun aggregate not_a_rule
python benchmarks/bench_auc.py --images 3 --no-such-bench-flag && python benchmarks/missing.py
pytest -m "slow and not_a_marker" && pip install -e '.[test,nonextra]'
python -m effunet.tracking relocate sqlite:///x.db && python -m effunet.nowhere
```

Measured at `17a2b7d`, not at `abc1234`.
See `workflow/scripts/train.py`, `workflow/scripts/nothing.py` and `config/*.nothing`,
`tests/test_docs.py::test_the_checker_passes_what_exists`, `tests/test_docs.py::test_nothing`.
"""


def test_the_checker_finds_each_kind_of_mistake(tmp_path):
    doc = ROOT / "sample.md"  # links resolve from the repository root, as README.md's do
    problems = "\n".join(check(doc, BAD))
    expected = [
        "missing file: docs/nowhere.md",
        "missing heading: #no-such-heading",
        "missing heading: README.md#no-such-heading",
        "no config key train.no_such_key",
        "no config key datasets.cells.colour",
        "sample.md:9: effunet.nowhere: src/effunet/__init__.py defines no nowhere",
        "defines no no_such_function",
        "effunet predict has no option --no-such-flag",
        "effunet has no subcommand frobnicate",
        "--configfile config/nowhere.yaml: no such file",
        "snakemake has no option --no-such-snakemake-flag",
        "--forcerun not_a_rule: no such rule",
        "bench_auc.py has no option --no-such-bench-flag",
        "no such script: benchmarks/missing.py",
        "no marker not_a_marker",
        "no extra nonextra",
        "python -m effunet.nowhere: no such module",
        "no such file in the repository: workflow/scripts/nothing.py",
        "no such file in the repository: config/*.nothing",
        "tests/test_docs.py has no test test_nothing",
        *(["no commit abc1234 in this repository"] if history() else []),
        # reported twice: as a path and by the command's check
        "no such file in the repository: config/nowhere.yaml",
        "no such file in the repository: benchmarks/missing.py",
        "sample.md:17: effunet.nowhere: src/effunet/__init__.py defines no nowhere",
    ]
    for message in expected:
        assert message in problems, f"not found: {message}\n{problems}"
    assert len(problems.splitlines()) == len(expected), problems


def test_the_checker_passes_what_exists():
    good = (
        BAD.split("[gone]")[0]
        + "\n\n```bash\nsnakemake --cores 2 --configfile config/demo.yaml --until download\n```\n"
        + "\nMeasured at `17a2b7d` (the first commit), `1234567` is a number.\n"
    )
    assert check(ROOT / "sample.md", good) == []
    assert slug("Use it: `effunet ui` (the MLflow UI)") == "use-it-effunet-ui-the-mlflow-ui"
    assert key_exists("datasets.<name>.train.instances") and key_exists("model_options.unet.base_filters")
    assert not key_exists("model_options.unet.align_upsampling")
