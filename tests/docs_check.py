"""Checks of the docs site that `make docs` builds (build/docs/build/html).

    python tests/docs_check.py warnings build/docs/warnings.log           (make docs)
    python tests/docs_check.py page build/docs/build/html build/docs-check  (make docs-check)
    python tests/docs_check.py links .cache/collections/ansible_collections/kubeops/daemonset  (make docs)

``warnings``: Sphinx's warnings file holds nothing but the warnings of an offline build, each matching an entry of
tests/docs-allowed-warnings.txt; any other warning or error fails.

``page``: the ds_rollout_wait module's page as a person sees it, in headless Chromium (Debian's ``chromium``): a
screenshot (OUTDIR/ds_rollout_wait.png) and the DOM after the page's scripts ran (OUTDIR/ds_rollout_wait.html),
which must show the module's title, an entry for every option ``ansible-doc`` lists for it, and a link to the guide
(docs/docsite/rst/guide.rst) by its title.

``links``: every relative link of the Markdown files (README.md, docs/, roles/*/README.md) leads to a file or folder
of the installed collection, as a reader of the tarball's copy follows it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = ROOT / "tests/docs-allowed-warnings.txt"
MODULE = "kubeops.daemonset.ds_rollout_wait"
PAGE = "ds_rollout_wait_module.html"
GUIDE = ROOT / "docs/docsite/rst/guide.rst"
# the first line of a message in Sphinx's warnings file: [FILE:[LINE:] ]LEVEL: text
MESSAGE = re.compile(r"^(?:(?P<location>\S+?:(?:\d+:)?) )?(?P<text>(?:WARNING|ERROR|CRITICAL|SEVERE): .*)$")


def messages(log: str) -> list[tuple[str, str]]:
    """(location, text) of each message; continuation lines join the text with \\n."""
    found: list[tuple[str, str]] = []
    for line in log.splitlines():
        match = MESSAGE.match(line)
        if match:
            found.append((match.group("location") or "", match.group("text")))
        elif found and line.strip():
            location, text = found[-1]
            found[-1] = (location, f"{text}\n{line}")
        elif line.strip():
            found.append(("", line))
    return found


def check_warnings(log_path: Path) -> int:
    if not log_path.is_file():
        print(f"{log_path}: no warnings file (did sphinx-build run?)", file=sys.stderr)
        return 1
    patterns = [
        re.compile(line) for line in ALLOWED.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    counts = dict.fromkeys((pattern.pattern for pattern in patterns), 0)
    unexpected = []
    for location, text in messages(log_path.read_text()):
        pattern = next((pattern for pattern in patterns if pattern.fullmatch(text)), None)
        if pattern is None:
            unexpected.append(f"{location} {text}".strip())
        else:
            counts[pattern.pattern] += 1
    allowed = sum(counts.values())
    print(f"docs: {allowed} allowed warning(s) of an offline build ({ALLOWED.relative_to(ROOT)}), "
          f"{len(unexpected)} other(s)")  # fmt: skip
    if unexpected:
        print("warnings that tests/docs-allowed-warnings.txt does not allow:", *unexpected, sep="\n", file=sys.stderr)
        return 1
    return 0


class Page(HTMLParser):
    """The parts of a page the check looks at: its h1 text, every element id, every link (href, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []
        self.h1 = ""
        self._in_h1 = False
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"] or "")
        if tag == "h1":
            self._in_h1 = True
        if tag == "a" and values.get("href"):
            self._href, self._text = values["href"], []

    def handle_endtag(self, tag: str) -> None:
        if tag == "h1":
            self._in_h1 = False
        if tag == "a" and self._href is not None:
            self.links.append((self._href, " ".join("".join(self._text).split())))
            self._href = None

    def handle_data(self, data: str) -> None:
        if self._in_h1:
            self.h1 += data
        if self._href is not None:
            self._text.append(data)


def chromium(*args: str) -> str:
    binary = shutil.which("chromium")
    if binary is None:
        raise SystemExit("chromium is not installed (make docs-packages installs Debian's)")
    with tempfile.TemporaryDirectory() as profile:
        # --no-sandbox: Chromium refuses to run as root with its sandbox; the page is our own local file
        command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                   "--disable-background-networking", "--disable-component-update", f"--user-data-dir={profile}",
                   "--window-size=1280,1600", *args]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise SystemExit(f"{path} is not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def module_options() -> list[str]:
    """Every option of the module as ansible-doc reads it, doc fragments included."""
    out = subprocess.run(["ansible-doc", "-t", "module", "--json", MODULE], capture_output=True, text=True, check=True)
    return sorted(json.loads(out.stdout)[MODULE]["doc"]["options"])


def guide_title() -> str:
    lines = GUIDE.read_text().splitlines()
    return next(line for line, under in zip(lines, lines[1:]) if under and set(under) == {"="} and line.strip())


def check_page(html: Path, outdir: Path) -> int:
    page_path = html / PAGE
    if not page_path.is_file():
        print(f"{page_path}: not built", file=sys.stderr)
        return 1
    outdir.mkdir(parents=True, exist_ok=True)
    url = page_path.resolve().as_uri()
    screenshot = outdir / "ds_rollout_wait.png"
    screenshot.unlink(missing_ok=True)
    chromium(f"--screenshot={screenshot}", url)
    dom = chromium("--dump-dom", url)
    (outdir / "ds_rollout_wait.html").write_text(dom)

    problems = []
    width, height = png_size(screenshot)
    # a page of text compresses to far more than a blank or error page
    if (width, height) != (1280, 1600) or screenshot.stat().st_size < 20_000:
        problems.append(f"{screenshot}: {width}x{height}, {screenshot.stat().st_size} bytes: not the rendered page")
    page = Page()
    page.feed(dom)
    if f"{MODULE} module" not in page.h1:
        problems.append(f"the page's title is {page.h1!r}, not the module's")
    missing = [option for option in module_options() if f"parameter-{option}" not in page.ids]
    if missing:
        problems.append(f"no entry for the options {', '.join(missing)}")
    title = guide_title()
    if not any(href.split("#")[0].endswith("guide.html") and text == title for href, text in page.links):
        problems.append(f"no link to the guide ({title!r})")
    for problem in problems:
        print(f"{PAGE}: {problem}", file=sys.stderr)
    if not problems:
        print(f"docs: {PAGE} in Chromium shows the module, its options and the guide link; screenshot {screenshot}")
    return 1 if problems else 0


def check_links(collection: Path) -> int:
    broken = []
    checked = 0
    for markdown in sorted(collection.rglob("*.md")):
        text = re.sub(r"```.*?```", "", markdown.read_text(), flags=re.DOTALL)  # no links in code blocks
        for target in re.findall(r"\]\(([^()\s]+)\)", text):
            path = target.split("#")[0]
            if not path or re.match(r"[a-z][a-z0-9+.-]*:", path):  # an anchor on the same page, or a URL
                continue
            checked += 1
            if not (markdown.parent / path).exists():
                broken.append(f"{markdown.relative_to(collection)}: {target}")
    if broken:
        print(f"links to nothing in the installed collection ({collection}):", *broken, sep="\n", file=sys.stderr)
        return 1
    print(f"docs: the {checked} relative links of the installed collection's Markdown files lead to its files")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    warnings = commands.add_parser("warnings", help="only the allowed warnings of an offline build")
    warnings.add_argument("log", type=Path)
    page = commands.add_parser("page", help="the module page in headless Chromium")
    page.add_argument("html", type=Path)
    page.add_argument("outdir", type=Path)
    links = commands.add_parser("links", help="the Markdown files' relative links in the installed collection")
    links.add_argument("collection", type=Path)
    args = parser.parse_args()
    if args.command == "links":
        return check_links(args.collection)
    if args.command == "warnings":
        return check_warnings(args.log)
    return check_page(args.html, args.outdir)


if __name__ == "__main__":
    sys.exit(main())
