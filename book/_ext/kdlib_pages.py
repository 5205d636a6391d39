"""Page fixes for the rendered book (a local Sphinx extension named in _config.yml).

sphinx-thebe registers its inline configuration script once per read phase, so pages carried it
twice and the browser reported "Identifier 'THEBE_JS_URL' has already been declared". The book
keeps one copy of every script.
"""


def _one_of_each_script(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for script in context.get("script_files", []):
        attributes = getattr(script, "attributes", {}) or {}
        name = getattr(script, "filename", script)
        # an inline script is registered with filename None or "": the same body is the same script
        key = ("", attributes["body"]) if attributes.get("body") else (str(name), tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _one_of_each_script, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
