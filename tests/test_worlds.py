"""worlds: the chapter's parameters and profiles, and the world-check claims the other chapters include."""

import re

from kdlib import run

KEY = "worlds"
WORLDS = {"mnist1d", "mnist1d_features", "lm"}  # book/_worlds/<world>.md, one per shared world


def test_parameters_cell_and_profiles_resolve():
    defaults = run.notebook_parameters(run.notebook_path(KEY))
    assert list(defaults)[0] == "profile"
    smoke = run.resolve_parameters(KEY, "smoke")  # raises RunError naming a bad or unknown parameter
    assert smoke["profile"] == "smoke" and smoke["seeds"] <= defaults["seeds"]
    assert defaults["pilot_seeds"] >= 4 and defaults["teacher_epochs"] == 30
    for profile in ("cpu", "paper"):
        run.resolve_parameters(KEY, profile)


def test_one_world_claim_per_shared_world():
    """write_world_checks names each note after a `world_<world>` claim id: the ids are the contract."""
    source = run.notebook_path(KEY).read_text()
    ids = set(re.findall(r'"world_(\w+)", ', source))
    assert ids == WORLDS
