"""`charter view --export-html DIR`: every page reachable from the index, as static files.

Pages are fetched from the same ViewApp the server uses and written flat into DIR, each internal
link rewritten to its file (index.html for "/", p-<hash>.html for the others), so the snapshot
opens from disk, offline, with no server. Written to a temporary folder first and moved into
place, so an interrupted export leaves no half-written snapshot.
"""

from __future__ import annotations

import hashlib
import html
import re
import shutil
import tempfile
from collections import deque
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from charter.errors import CharterError

LINK = re.compile(r'href="(/[^"]*)"')


def page_file(url: str) -> str:
    return "index.html" if url in ("/", "") else f"p-{hashlib.sha1(url.encode()).hexdigest()[:16]}.html"


def export_site(app, folder: Path, limit: int = 100_000) -> int:
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise CharterError(f"{folder} exists and is not empty; give a new folder for the snapshot")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        seen, queue = {"/"}, deque(["/"])
        while queue:
            url = queue.popleft()
            parts = urlsplit(html.unescape(url))
            page = app.handle(parts.path, parse_qs(parts.query))
            body = page.body
            if page.content_type.startswith("text/html"):
                text = body.decode("utf-8")
                for link in LINK.findall(text):
                    target = link.split("#")[0]
                    if target not in seen and len(seen) < limit:
                        seen.add(target)
                        queue.append(target)
                text = LINK.sub(lambda m: f'href="{_relative(m.group(1))}"', text)
                body = text.encode("utf-8")
            (staging / page_file(url)).write_bytes(body)
        if folder.exists():
            folder.rmdir()
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return len(seen)


def _relative(link: str) -> str:
    target, _, anchor = link.partition("#")
    return page_file(target) + (f"#{anchor}" if anchor else "")
