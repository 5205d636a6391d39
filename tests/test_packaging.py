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
