#!/usr/bin/env python3
"""Checks that the relative links of README.md, docs/*.md and bench/results/*.md resolve, and that README.md stays short."""

import glob
import os
import re
import sys
from urllib.parse import unquote

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README_MAX_LINES = 320

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
ATX_HEADING = re.compile(r"^ {0,3}#{1,6}(?:\s+(.*?))?(?:\s+#+)?\s*$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)\s*$")
HTML_ANCHOR = re.compile(r"<a\s[^>]*(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def prose_lines(text):
    """Yields (line number, line) for the lines outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0] * 3
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            continue
        yield number, line


def slug(heading):
    """GitHub's anchor for a heading: lowercase, punctuation but hyphens and spaces dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path, cache={}):
    """The anchors of a Markdown file: its headings' slugs (duplicates numbered) and explicit HTML anchors."""
    if path not in cache:
        with open(path, encoding="utf-8") as file:
            text = file.read()
        found, seen = set(), {}
        previous = ""
        for _, line in prose_lines(text):
            heading = None
            atx = ATX_HEADING.match(line)
            if atx:
                heading = atx.group(1) or ""
            elif SETEXT_UNDERLINE.match(line) and previous.strip() and not previous.lstrip().startswith(("-", "*", "|", ">")):
                heading = previous.strip()
            if heading is not None:
                base = slug(heading)
                count = seen.get(base, 0)
                seen[base] = count + 1
                found.add(base if count == 0 else f"{base}-{count}")
            found.update(HTML_ANCHOR.findall(line))
            previous = line
        cache[path] = found
    return cache[path]


def links(text):
    """Yields (line number, target) for every link target outside code."""
    for number, line in prose_lines(text):
        line = INLINE_CODE.sub("", line)
        for match in LINK.finditer(line):
            yield number, match.group(1)
        reference = REFERENCE.match(line)
        if reference:
            yield number, reference.group(1)


def broken(source, target):
    """True when a relative link of `source` does not resolve to a file (and, with #anchor, to a heading in it)."""
    path, _, anchor = target.partition("#")
    path = unquote(path)
    if not path:
        resolved = source
    elif path.startswith("/"):
        resolved = os.path.join(ROOT, path.lstrip("/"))
    else:
        resolved = os.path.normpath(os.path.join(os.path.dirname(source), path))
    if not os.path.exists(resolved):
        return True
    if anchor and resolved.endswith(".md") and os.path.isfile(resolved):
        return unquote(anchor).lower() not in anchors(resolved)
    return False


def main():
    files = [os.path.join(ROOT, "README.md")]
    files += sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    files += sorted(glob.glob(os.path.join(ROOT, "bench", "results", "*.md")))
    checked, failures = 0, []
    for source in files:
        with open(source, encoding="utf-8") as file:
            text = file.read()
        for number, target in links(text):
            if SCHEME.match(target) or target.startswith("//"):
                continue
            checked += 1
            if broken(source, target):
                failures.append(f"{os.path.relpath(source, ROOT)}:{number}: {target}")
    for failure in failures:
        print(failure)
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as file:
        readme_lines = len(file.read().splitlines())
    too_long = readme_lines > README_MAX_LINES
    if too_long:
        print(f"README.md: {readme_lines} lines, more than {README_MAX_LINES}")
    if failures or too_long:
        return 1
    print(f"docs: {checked} links ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
