"""Tiny helper to write a chapter notebook from a list of (kind, source[, tags]) cells.

Used while authoring: `python tools/nbgen.py` is not part of the build; the notebooks
in notebooks/ are the source of truth once written.
"""
import nbformat


def write(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for cell in cells:
        kind, src, *rest = cell
        tags = rest[0] if rest else []
        c = nbformat.v4.new_markdown_cell(src.strip("\n")) if kind == "md" else nbformat.v4.new_code_cell(src.strip("\n"))
        if tags:
            c.metadata["tags"] = tags
        nb.cells.append(c)
    for i, c in enumerate(nb.cells):  # stable ids keep diffs small
        c["id"] = f"c{i:02d}"
    nbformat.write(nb, path)
