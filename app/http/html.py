"""The HTML pages the API serves (/docs, /docs/redoc, /problems): one skeleton, each page its own head and body."""

from __future__ import annotations

import html


def page(title: str, *, head: str, body: str) -> str:
    """An HTML5 page in English titled `title` (escaped here); `head` and `body` are HTML, each line ending in \\n."""
    return ('<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n{head}</head>\n<body>\n{body}</body>\n</html>\n")
