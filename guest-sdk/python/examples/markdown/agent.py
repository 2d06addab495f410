"""Example Orbit agent: renders Markdown to HTML (a port of
``examples/markdown``).

The input is a Markdown document. The agent renders it as pulldown-cmark
does with tables, footnotes and strikethrough enabled (``render.py``),
stores the HTML in the workspace's storage under
``html/<first 16 hex chars of sha256(input)>.html`` with content type
``text/html; charset=utf-8``, logs the key at ``info`` level and returns
the HTML.

Its dependencies (markdown-it-py, mdit-py-plugins) are pure Python,
installed into ``vendor/`` next to this file (see ``requirements.txt``) and
imported when the component is built.
"""

import hashlib
import os
import sys

# vendor/ holds the pip-installed dependencies. Everything is imported at
# build time (componentize-py snapshots the imported modules), so this path
# only matters then.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "vendor"))

import orbit  # noqa: E402
from render import render  # noqa: E402

CONTENT_TYPE = "text/html; charset=utf-8"
"""Content type of the stored HTML."""


def storage_key(markdown: str) -> str:
    """The storage key for the HTML rendered from ``markdown``."""
    return "html/" + hashlib.sha256(markdown.encode("utf-8")).hexdigest()[:16] + ".html"


@orbit.agent
def run(input: str) -> str:
    html = render(input)
    key = storage_key(input)
    orbit.storage.put(key, html.encode("utf-8"), CONTENT_TYPE)
    orbit.log.info(f"stored rendered HTML at {key}")
    return html
