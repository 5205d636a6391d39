"""Every paper and dataset the chapters name has one complete references.bib entry."""

from pybtex.database import parse_file

from kdlib.repro import REPO_ROOT

# Papers the Part II–V chapters name (issues #7, #9, #10, #13) and the datasets they use.
NAMED = [
    "gu2024minillm", "agarwal2024gkd", "ko2024distillm", "kim2016seqkd", "lin2020imitkd", "xu2025skd",
    "cui2024sinkd", "shing2025taid", "tiapkin2025teacherhacking", "ramesh2025fidelity",
    "karpathy2015charrnn", "rabiner1989hmm", "greydanus2024mnist1d", "krizhevsky2009cifar",
    "park2019rkd", "hao2023ofa", "zhang2023trg", "nix2023hard", "yu2025layerselection",
    "amara2022bdkd", "choi2023orc", "dong2023diswot", "malik2021tcn", "rao2024pesf", "mujtaba2025edgefd",
    "tang2023kd3", "baykal2023rad", "borup2021even", "zhao2023limits", "sarnthein2023random",
    "benbaruch2025pruning", "choi2023mixup", "hu2024tgeo",
]


def test_every_named_paper_has_a_complete_entry():
    bib = parse_file(str(REPO_ROOT / "book" / "references.bib"))  # raises on a duplicate key
    missing = [key for key in NAMED if key not in bib.entries]
    assert not missing, f"not in references.bib: {missing}"
    for key, entry in bib.entries.items():
        assert entry.persons.get("author"), f"{key}: no author"
        for field in ("title", "year"):
            assert entry.fields.get(field), f"{key}: no {field}"
        assert "[verify]" not in str(entry.fields.get("note", "")), f"{key}: a [verify] marker"


def test_every_entry_is_one_balanced_block():
    """pybtex skips a stray brace silently; a merge that drops or doubles one shows here."""
    import re

    lines = (REPO_ROOT / "book" / "references.bib").read_text().splitlines()
    text = "\n".join(ln for ln in lines if not ln.lstrip().startswith("%"))  # comments between entries
    for block in re.split(r"\n(?=@)", text.strip()):
        head = block.splitlines()[0]
        assert block.count("{") == block.count("}"), f"unbalanced braces in {head}"
        assert block.rstrip().endswith("}"), f"{head} does not end with a closing brace"
