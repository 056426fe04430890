"""`longact data ruler-essays`: build the essay haystack corpus from the official URL list.

The official list (NVIDIA/RULER `scripts/data/synthetic/json/PaulGrahamEssays_URLs.txt`, pinned
commit) names essay pages on paulgraham.com and plain-text copies on GitHub. Each one is fetched
once into `<out>/<name>.txt` (pages: the text of the essay's <font> element, as the official
downloader selects it; paragraphs kept, markup dropped), with `manifest.json` recording the URL,
SHA-256 and size of every file. Reruns skip files already present, so an interrupted download
resumes. The generators read the directory in file-name order.

The official downloader converts pages with html2text (markdown escapes included); ours keeps
plain text, so essay-haystack prompts are not byte-identical to official ones. The manifest's
checksums identify the corpus in every result.
"""

from __future__ import annotations

import hashlib
import json
import os
from html.parser import HTMLParser
from pathlib import Path

from tasks.data_io import atomic_write_text
from tasks.ruler.sources import ESSAY_URL_LIST, cache_root


class _FontText(HTMLParser):
    """Text inside the first <font> element; <br> and <p> become line breaks."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth, self.done, self.parts = 0, False, []

    def handle_starttag(self, tag, attrs):
        if self.done:
            return
        if tag == "font":
            self.depth += 1
        elif self.depth and tag in ("br", "p"):
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag == "font" and self.depth:
            self.depth -= 1
            self.done = self.depth == 0

    def handle_data(self, data):
        if self.depth and not self.done:
            self.parts.append(data)


def essay_text_from_html(html: str) -> str:
    parser = _FontText()
    parser.feed(html)
    lines = [" ".join(line.split()) for line in "".join(parser.parts).split("\n")]
    paragraphs, current = [], []
    for line in lines:
        if line:
            current.append(line)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs) + "\n"


def _get(url: str, timeout: float) -> bytes:
    if url.startswith(("http://", "https://")):
        import requests

        resp = requests.get(url, timeout=timeout)
        resp.raise_for_status()
        return resp.content
    return Path(url.removeprefix("file://")).read_bytes()


def file_name(url: str) -> str:
    name = url.rstrip("/").split("/")[-1]
    return name[:-5] + ".txt" if name.endswith(".html") else (name if name.endswith(".txt") else name + ".txt")


def download_essays(out_dir: str | os.PathLike | None = None, url_list: str = ESSAY_URL_LIST,
                    timeout: float = 30.0, progress: bool = True) -> dict:
    """Fetch every essay of `url_list` (a URL or a local file) into `out_dir`; returns the manifest."""
    out = Path(out_dir) if out_dir else cache_root() / "essays"
    out.mkdir(parents=True, exist_ok=True)
    urls = [u.strip() for u in _get(url_list, timeout).decode("utf-8").splitlines() if u.strip()]
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"files": {}}
    manifest["url_list"] = url_list
    failures = []
    it = urls
    if progress:
        from tqdm import tqdm

        it = tqdm(urls, desc="essays", unit="essay")
    for url in it:
        target = out / file_name(url)
        if target.exists() and target.name in manifest["files"]:
            continue
        try:
            raw = _get(url, timeout).decode("utf-8", errors="replace")
        except Exception as e:  # noqa: BLE001 - network errors of every kind are reported per URL
            failures.append(f"{url}: {type(e).__name__}: {str(e)[:120]}")
            continue
        text = essay_text_from_html(raw) if url.endswith(".html") else raw
        if not text.strip():
            failures.append(f"{url}: no essay text found")
            continue
        atomic_write_text(target, text)
        manifest["files"][target.name] = {"url": url, "sha256": hashlib.sha256(text.encode()).hexdigest(),
                                          "chars": len(text)}
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    manifest["failures"] = failures
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    manifest["out_dir"] = str(out)
    return manifest
