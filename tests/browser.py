"""Open built book pages in headless Chromium (Playwright) with the network cut, and report what a
reader would trip over: console errors, requests to other hosts, images that did not load, and a
page wider than the window. Used by tests/test_book.py; run alone: python tests/browser.py HTML_DIR."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import sys
import threading
from pathlib import Path

WIDTH, HEIGHT = 1280, 900


def chromium_path() -> str | None:
    """A Chromium the tests may drive: $KDLIB_CHROMIUM, else the system's (Debian's `chromium`)."""
    for candidate in (os.environ.get("KDLIB_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def serve(root: Path):
    """A static server on 127.0.0.1 (random port) in a daemon thread; returns (server, base url)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):  # a page left before a file finished: not a problem
            pass

    server = Server(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


# Elements that may scroll sideways inside the column: code, outputs, equations, wide tables.
SCROLLERS = "pre, .highlight, .cell_output, .output, .math, mjx-container, .MathJax, .table-wrapper, table"

PAGE_CHECK = """(scrollers) => {
  const overflow = document.documentElement.scrollWidth - window.innerWidth;
  const broken = Array.from(document.images).filter(i => i.complete && i.naturalWidth === 0).map(i => i.src);
  const wide = [];
  for (const el of document.querySelectorAll('main *')) {
    if (el.closest(scrollers)) continue;
    const r = el.getBoundingClientRect();
    if (r.right > window.innerWidth + 1 && r.width > 0) wide.push(el.tagName + '.' + el.className);
  }
  return {overflow, broken, wide: wide.slice(0, 3)};
}"""


def check_pages(html: Path, pages: list[str]) -> list[str]:
    """Problems found on `pages` (paths relative to `html`), one line each; [] when all are clean."""
    from playwright.sync_api import sync_playwright

    server, base = serve(html)
    problems = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, service_workers="block")

            def route(r):  # the network is cut: only this server answers
                if r.request.url.startswith(base) or r.request.url.startswith("data:"):
                    r.continue_()
                else:
                    problems.append(f"{current[0]}: request to another host: {r.request.url}")
                    r.abort()

            current = [""]
            context.route("**/*", route)
            page = context.new_page()
            page.on("console", lambda m: m.type == "error" and problems.append(f"{current[0]}: console: {m.text}"))
            page.on("pageerror", lambda e: problems.append(f"{current[0]}: page error: {e}"))
            page.on("response", lambda r: r.status >= 400 and problems.append(f"{current[0]}: {r.status} {r.url}"))
            for rel in pages:
                current[0] = rel
                page.goto(base + rel, wait_until="load")
                page.wait_for_timeout(150)
                found = page.evaluate(PAGE_CHECK, SCROLLERS)
                problems += [f"{rel}: image did not load: {src}" for src in found["broken"]]
                if found["overflow"] > 1:
                    problems.append(f"{rel}: page {found['overflow']} px wider than a {WIDTH} px window "
                                    f"(e.g. {', '.join(found['wide']) or 'unknown element'})")
            browser.close()
    finally:
        server.shutdown()
    return problems


def book_pages(html: Path) -> list[str]:
    """The intro, the reading pages and every chapter of a built book."""
    pages = ["index.html", "book/intro.html", "book/scoreboard.html", "book/conventions.html"]
    pages += sorted(p.relative_to(html).as_posix() for p in (html / "book" / "chapters").glob("*.html"))
    return [p for p in pages if (html / p).exists()]


if __name__ == "__main__":
    root = Path(sys.argv[1])
    found = check_pages(root, sys.argv[2:] or book_pages(root))
    print("\n".join(found) or "no problems")
