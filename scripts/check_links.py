#!/usr/bin/env python3
"""Checks every relative link of a static HTML site (stdlib only).

For each .html file under SITE, every href and src that is not an absolute
URL must name a file inside SITE, and its #fragment, when it has one and
names an HTML page, must be an id (or <a name>) of that page. Prints each
broken link as "page: link (why)" and exits 1 when there is one.

Usage: scripts/check_links.py SITE      (e.g. build/docs/html)
"""
import html.parser
import os
import sys
import urllib.parse


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links = []      # (attribute value, line)
        self.anchors = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            if name in ('href', 'src'):
                self.links.append((value, self.getpos()[0]))
            elif name == 'id' or (tag == 'a' and name == 'name'):
                self.anchors.add(value)

    handle_startendtag = handle_starttag


def parse(path, cache):
    if path not in cache:
        page = Page()
        with open(path, encoding='utf-8', errors='replace') as f:
            page.feed(f.read())
        cache[path] = page
    return cache[path]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    site = os.path.realpath(sys.argv[1])
    if not os.path.isdir(site):
        sys.exit(f'check_links: {site} is not a directory (build the site first: scripts/docs.sh)')
    cache = {}
    pages = sorted(os.path.join(d, f) for d, _, files in os.walk(site) for f in files if f.endswith('.html'))
    broken = []
    checked = 0
    for page_path in pages:
        page = parse(page_path, cache)
        for link, line in page.links:
            url = urllib.parse.urlsplit(link)
            if url.scheme or url.netloc or link.startswith('//'):
                continue          # absolute: not part of the site
            checked += 1
            where = f'{os.path.relpath(page_path, site)}:{line}: {link}'
            if url.path:
                target = os.path.realpath(os.path.join(os.path.dirname(page_path),
                                                       urllib.parse.unquote(url.path)))
            else:
                target = page_path
            if os.path.commonpath([site, target]) != site:
                broken.append(f'{where} (leaves the site)')
                continue
            if not os.path.exists(target):
                broken.append(f'{where} (no such file)')
                continue
            if url.fragment and target.endswith('.html'):
                if urllib.parse.unquote(url.fragment) not in parse(target, cache).anchors:
                    broken.append(f'{where} (no anchor #{url.fragment} in {os.path.relpath(target, site)})')
    for b in broken:
        print(f'broken link: {b}')
    print(f'check_links: {len(pages)} pages, {checked} relative links, {len(broken)} broken')
    sys.exit(1 if broken else 0)


if __name__ == '__main__':
    main()
