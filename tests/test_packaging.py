"""Set-up promises: two README commands, one set of pins shared by pip and conda, CI calls make test."""

import re
import tomllib

from kdlib.repro import REPO_ROOT


def _pins(text):
    return dict(re.findall(r"^\s*-?\s*([A-Za-z0-9_.\-]+)==([^\s#]+)", text, re.M))


def test_environment_yml_uses_the_constraints_pins():
    constraints = {k.lower(): v for k, v in _pins((REPO_ROOT / "constraints.txt").read_text()).items()}
    env = _pins((REPO_ROOT / "environment.yml").read_text())
    assert len(env) >= 15
    for name, version in env.items():
        assert constraints.get(name.lower()) == version, name
    assert "torch" in constraints and constraints["torch"] == "2.13.0"


def test_pyproject_extras_are_all_pinned():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    constraints = {k.lower() for k in _pins((REPO_ROOT / "constraints.txt").read_text())}
    names = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    for dep in names:
        name = re.split(r"[<>=\[ ]", dep)[0].lower()
        assert name in constraints, f"{name} is not pinned in constraints.txt"
    assert "jupyter-book>=1.0.4.post1,<2" in project["optional-dependencies"]["book"]


def test_readme_names_the_two_commands_and_ci_runs_the_tests():
    readme = (REPO_ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "python3 -m venv" in makefile.replace("$(PYTHON)", "python3") and "torch==2.13.0" in makefile


def test_license_and_citation_match_pyproject():
    import yaml

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    license_text = (REPO_ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License") and project["license"]["text"] == "MIT"
    assert "Copyright (c) 2026 The kdlib authors" in license_text
    cff = yaml.safe_load((REPO_ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert str(cff["version"]) == project["version"], "CITATION.cff and pyproject.toml versions differ"
    assert cff["license"] == "MIT" and cff["authors"] == [{"name": "The kdlib authors"}]
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    assert cff["repository-code"] == config["repository"]["url"]


def test_publish_workflow_builds_with_make_book_and_deploys_the_html():
    import yaml

    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "book.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    assert any(step.get("run") == "make book" for step in steps)
    upload = [s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact")]
    assert upload and upload[0]["with"]["path"] == "_build/html"
    assert workflow["permissions"]["pages"] == "write" and workflow["permissions"]["id-token"] == "write"


def test_one_repository_address_everywhere():
    """_config.yml sets the address once; the Colab button uses it, and the Colab cell of every chapter
    (and of the new-chapter template), CITATION.cff and the README spell the same one."""
    import re

    import yaml

    url = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())["repository"]["url"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url)
    spelled = {  # file -> the address it gives for the book's own repository
        "CITATION.cff": r'repository-code: "([^"]+)"',
        "README.md": r"The source lives at\s+(\S+?)\s",
    }
    for name, pattern in spelled.items():
        assert re.findall(pattern, (REPO_ROOT / name).read_text()) == [url], name
    colab = r'"clone", "--depth", "1", "([^"]+)"'  # the Colab cell that installs the book
    for f in [REPO_ROOT / "kdlib" / "templates" / "chapter.md", *sorted((REPO_ROOT / "notebooks").glob("*.md"))]:
        assert re.findall(colab, f.read_text()) == [url], f"{f.relative_to(REPO_ROOT)}: its Colab cell"
