"""The `kdlib` command: run chapters, list them, write student copies.

Its fixed cost is kept small: this module and `kdlib.run` import neither torch nor numpy, scipy or
pandas, so `kdlib --version`, `--help` and a refused `-p` answer at once (tests/test_cli.py). Only
what a command needs is imported, inside it.
"""

from __future__ import annotations

import argparse
import json
import keyword
import os
import sys
from pathlib import Path

from . import __version__, chapters, run

EPILOG = """examples:
  kdlib run dkd                          the book's run (cpu profile), skipped if current
  kdlib run dkd -p beta=2                an experiment: written under _runs/, never into book/
  kdlib run --all --profile smoke        every chapter in seconds (under _runs/)
  kdlib list                             chapters by part, profiles, current or stale, run time, verdicts
  kdlib student --all                    exercise copies without solutions
  kdlib new my_paper                     a new chapter's skeleton: notebook, profiles, test stub
"""
TEMPLATES = Path(__file__).parent / "templates"
# what `kdlib new KEY` writes: template -> path in the repository
NEW_FILES = {"chapter.md": "notebooks/{key}.md", "smoke.yaml": "params/{key}/smoke.yaml",
             "paper.yaml": "params/{key}/paper.yaml",  # cpu: the notebook's defaults, no file
             "test.py.tmpl": "tests/test_{key}.py"}


def _parts() -> list[tuple[str, list[str]]]:
    """(caption, chapter keys) of the book's parts, in _toc.yml order."""
    import yaml

    toc = yaml.safe_load((run.ROOT / "_toc.yml").read_text())
    parts = []
    for part in toc.get("parts", []):
        keys = [c["file"].split("/")[-1] for c in part.get("chapters", []) if "/chapters/" in c.get("file", "")]
        if keys:
            parts.append((part.get("caption", ""), keys))
    listed = {k for _, keys in parts for k in keys}
    extra = [k for k in chapters.all_keys() if k not in listed]
    return parts + ([("Not in the table of contents", extra)] if extra else [])


def _run_time(res) -> str:
    """The cpu run's timed sections (teacher, pilot, students ...) from its results file, e.g. '1.2 min'.

    Kernel start-up and plotting are not timed: a whole `kdlib run` takes some 10-25 s more. The
    time is the recording machine's (provenance.hardware; 2 cores for the book's runs)."""
    durations = ((res or {}).get("provenance") or {}).get("durations") or {}
    seconds = sum(v for v in durations.values() if isinstance(v, (int, float)))
    return f"{seconds / 60:.1f} min" if seconds else "-"


def _book_results(key: str, profile: str) -> dict | None:
    """The book's results file of `key` at `profile`, or None: read as JSON, not through
    kdlib.results, whose statistics (scipy) `list` does not need."""
    try:
        return json.loads(chapters.book_results_path(key, profile).read_text())
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise run.RunError(f"results file {chapters.book_results_path(key, profile)} is not valid JSON: {err}") from None


def list_chapters() -> int:
    for caption, keys in _parts():
        print(caption)
        for key in keys:
            profiles = ",".join(p for p in run.PROFILES if (run.ROOT / "params" / key / f"{p}.yaml").exists())
            try:
                state = "current" if run.is_current(key, "cpu", run.input_hash(key, run.resolve_parameters(key, "cpu"))) else "stale"
            except chapters.ChapterError as err:
                state = f"broken ({err})"
            res = _book_results(key, "cpu")
            counts = {}
            for claim in (res or {}).get("claims", []):
                counts[claim["verdict"]] = counts.get(claim["verdict"], 0) + 1
            verdicts = ", ".join(f"{n} {v}" for v, n in counts.items()) or "no results"
            print(f"  {key:<20} profiles: {profiles:<16} {state:<8} cpu run {_run_time(res):>8}  {verdicts}")
    return 0


def new_chapter(key: str, root: Path | None = None) -> list[Path]:
    """Write a new chapter's skeleton from kdlib/templates: a notebook that runs (KD vs CE on
    MNIST-1D with the book's teacher) in the design's section order, its three profiles and a test.

    Adding a chapter is then this command plus the method's files; nothing existing is overwritten.
    """
    root = Path(root or run.ROOT)
    if not (key.isidentifier() and key == key.lower() and not keyword.iskeyword(key)):
        raise run.RunError(f"new: {key!r} is not a valid key: use a lower-case Python identifier that is not a "
                           f"keyword, e.g. my_paper (it names notebooks/KEY.md, params/KEY/, kdlib/methods/KEY.py)")
    targets = {template: root / path.format(key=key) for template, path in NEW_FILES.items()}
    for path in targets.values():
        if path.exists():
            raise run.RunError(f"new: {path.relative_to(root)} exists already; chapter {key!r} is not new")
    title = f"{key.replace('_', ' ').capitalize()}: TODO the paper's title (Authors, Venue Year)"
    for template, path in targets.items():
        text = (TEMPLATES / template).read_text().replace("{key}", key).replace("{title}", title)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(targets.values())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="kdlib", description="Knowledge Distillation, Reproduced: run the book's chapters.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"kdlib {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute chapters with papermill",
                           description="Execute chapters. Only the committed cpu/paper parameters write book/; "
                                       "anything else writes _runs/KEY/PROFILE-<hash>/ and prints the path.")
    p_run.add_argument("name", nargs="?", help="chapter key (the source is notebooks/NAME.md)")
    p_run.add_argument("--all", action="store_true", help="every chapter")
    p_run.add_argument("--profile", choices=run.PROFILES, default=run.BOOK_PROFILE,
                       help="smoke: seconds, for tests; cpu: the book's run (default); paper: one GPU, the paper's setting")
    p_run.add_argument("-p", "--param", action="append", metavar="KEY=VALUE",
                       help="override one parameter (repeatable; values read as YAML); the run goes to _runs/")
    p_run.add_argument("--force", action="store_true", help="run even if the book's copy is current")
    p_run.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                       help="run N chapters at once, each in its own process (2 on a 2-core machine)")
    p_run.add_argument("--no-scoreboard", action="store_true", help=argparse.SUPPRESS)  # set for each of --jobs' runs
    p_list = sub.add_parser("list", help="chapters by part: profile files, current or stale, the cpu run's recorded time, verdict counts")
    p_list.set_defaults(name=None, all=True)
    p_student = sub.add_parser("student", help="write exercise copies of chapters without the solutions")
    p_student.add_argument("name", nargs="?", help="chapter key")
    p_student.add_argument("--all", action="store_true", help="every chapter")
    p_student.add_argument("--out", default=str(run.ROOT / "_build" / "student"),
                           help="folder for the copies (default: _build/student)")
    p_new = sub.add_parser("new", help="write a new chapter's skeleton: notebook, profiles, test stub",
                           description="Write notebooks/KEY.md (a runnable KD-vs-CE skeleton in the book's section "
                                       "order), params/KEY/{smoke,paper}.yaml and tests/test_KEY.py.")
    p_new.add_argument("key", help="the chapter's key: a lower-case Python identifier, e.g. dkd")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            return list_chapters()
        if args.command == "new":
            written = new_chapter(args.key)
            print("kdlib new: wrote\n" + "\n".join(f"  {run._show(p)}" for p in written))
            print(f"next:\n  1. add `- file: book/chapters/{args.key}` to its part in _toc.yml\n"
                  f"  2. write the method in kdlib/methods/{args.key}.py, show it in the Method section, "
                  f"and replace the TODOs\n"
                  f"  3. kdlib run {args.key} --profile smoke")
            return 0
        if bool(args.name) == bool(args.all):
            raise run.RunError("give a chapter NAME or --all (not both)")
        keys = chapters.all_keys() if args.all else [args.name]
        if args.command == "student":
            for key in keys:
                print(run.student_copy(key, Path(args.out)))
            return 0
        if args.all and args.param:
            raise run.RunError("-p applies to one chapter; drop --all")
        if args.jobs < 1:
            raise run.RunError(f"--jobs must be at least 1, got {args.jobs}")
        return run.run(keys, args.profile, run.parse_overrides(args.param), args.force, jobs=args.jobs,
                       scoreboard=not args.no_scoreboard)
    except run.RunError as err:
        print(f"kdlib: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kdlib: interrupted; nothing was written to the book", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `kdlib list | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
