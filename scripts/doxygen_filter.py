#!/usr/bin/env python3
"""Doxygen INPUT_FILTER for qiloop's public headers (stdlib only).

The headers state each contract in plain // comments, in the house style:
a file comment at the top, a comment block right above each declaration
(its first line names it: "// QiEventLoop::call_soon()"), a trailing
comment beside a member. This filter hands Doxygen the same text as
documentation without changing the headers:

- the file comment becomes the file's documentation;
- a comment block directly above a declaration at namespace, class or enum
  scope (no blank line between) becomes that declaration's documentation,
  without its naming first line; blocks inside function bodies, blocks
  followed by a blank line (section rulers, notes) and blocks above access
  specifiers stay plain comments;
- a trailing comment on a member or enumerator line becomes ///<.

The text is plain prose with `code` spans and indented examples: examples
become @code blocks and Doxygen's special characters outside code spans are
escaped, so the prose is shown as written and never parsed as commands.
Usage (Doxygen calls it): doxygen_filter.py HEADER  -> filtered text on stdout.
"""
import os
import re
import sys

SCOPE_WORDS = re.compile(r'\b(namespace|class|struct|union|enum)\b')
NAME_LINE = re.compile(r'^[~\w:<>,.*&\[\]= ]*(\(.*\))?( \(.*\))?$')
ACCESS = re.compile(r'^\s*(public|private|protected|signals|public slots|Q_SIGNALS)\s*:')


def code_and_comment(line):
    """Splits a line into its code and its // comment (None when none),
    skipping string and character literals."""
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c in '"\'':
            q = c
            i += 1
            while i < n and line[i] != q:
                i += 2 if line[i] == '\\' else 1
            i += 1
            continue
        if line.startswith('//', i):
            return line[:i], line[i:]
        i += 1
    return line, None


def strip_literals(code):
    return re.sub(r'"(\\.|[^"\\])*"|\'(\\.|[^\'\\])*\'', '""', code)


def strip_template_prefix(stmt):
    s = stmt.strip()
    while s.startswith('template'):
        j = s.find('<')
        if j < 0:
            return s
        depth = 0
        for k in range(j, len(s)):
            if s[k] == '<':
                depth += 1
            elif s[k] == '>':
                depth -= 1
                if depth == 0:
                    s = s[k + 1:].strip()
                    break
        else:
            return s
    return s


def opens_scope(stmt):
    s = strip_template_prefix(stmt)
    s = re.sub(r'^(requires\b[^{]*?\))', '', s).strip()
    if s.startswith('extern "C"') or s.startswith('extern ""'):
        return 'ns'
    m = SCOPE_WORDS.search(s)
    if not m or '(' in s[:m.start()] or '=' in s[:m.start()]:
        return None
    return 'enum' if m.group(1) == 'enum' else 'ns' if m.group(1) == 'namespace' else 'class'


def escape(text):
    """Escapes Doxygen's special characters outside `code` spans."""
    parts = re.split(r'(`[^`]*`)', text)
    out = []
    for p in parts:
        if p.startswith('`') and p.endswith('`') and len(p) > 1:
            out.append(p)
            continue
        p = re.sub(r'([\\@<>&#$%|"])', r'\\\1', p)
        p = re.sub(r'(^|(?<=\W))::', r'\\::', p)
        # A line starting with digits and a dot, or a "+", would start a list.
        p = re.sub(r'^(\s*)(\d+)\.(\s)', r'\1\2\\.\3', p)
        p = re.sub(r'^(\s*)\+(\s)', r'\1\\+\2', p)
        out.append(p)
    return ''.join(out)


def render(texts, drop_name):
    """The comment texts (without //) as documentation lines."""
    lines = [t[1:] if t.startswith(' ') else t for t in texts]
    # Ruler lines (and a "File: path" banner between them) frame a header's
    # title: Doxygen would read a ruler as a Markdown heading underline.
    lines = [t for t in lines if not re.fullmatch(r'\s*[-=]{3,}\s*', t)
             and not re.fullmatch(r'File: \S+', t)]
    while lines and not lines[0].strip():
        lines = lines[1:]
    if drop_name and lines and NAME_LINE.match(lines[0]) and ('::' in lines[0] or '(' in lines[0]
                                                                or re.fullmatch(r'[\w]+', lines[0])):
        lines = lines[1:]
    out = []
    in_code = False
    prev = ''
    in_list = False
    for t in lines:
        indented = t.startswith('  ') and t.strip() != ''
        if in_code:
            if indented or t.strip() == '':
                out.append(t)
                prev = t
                continue
            while out and out[-1].strip() == '':
                out.pop()
            out.append('@endcode')
            in_code = False
        if t.startswith('- '):
            in_list = True
        elif t.strip() == '':
            in_list = False
        if indented and not in_list and (prev.strip() == '' or prev.rstrip().endswith(':')):
            out.append('@code{.cpp}')
            out.append(t)
            in_code = True
        elif indented and in_list:
            out.append(escape(t))
        else:
            out.append(escape(t))
        prev = t
    if in_code:
        while out and out[-1].strip() == '':
            out.pop()
        out.append('@endcode')
    return out


def hide_internals(lines):
    """Wraps in @cond what is not API but makes Doxygen stumble:
    specializations of std templates and out-of-line definitions of
    qi::detail functions."""
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ''
        start = (line.startswith('template <>') and nxt.startswith('struct std::')) or \
            (line.startswith('template') and re.match(r'^[\w:*&<> ]*\bdetail::\w+\(', nxt)
             and not nxt.rstrip().endswith(';'))
        if not start:
            out.append(line)
            i += 1
            continue
        out.append('/// @cond')
        while i < len(lines):
            out.append(lines[i])
            i += 1
            if lines[i - 1].startswith('}'):
                break
        out.append('/// @endcond')
    return out


def filter_header(src, path):
    lines = hide_internals(src.split('\n'))
    out = []
    stack = []          # scope kinds: ns, class, enum, body
    stmt = ''           # code since the last ; { } at this level
    block = []          # (index, indent, text) of a pending comment block
    seen_code = False
    last_trailing_col = None

    def in_scope():
        return not stack or stack[-1] in ('ns', 'class', 'enum')

    def flush(as_doc, file_doc=False):
        nonlocal block
        if not block:
            return
        indent = block[0][1]
        if as_doc:
            body = render([t for _, _, t in block], drop_name=not file_doc)
            if file_doc:
                body = ['@file'] + body
            if not any(b.strip() for b in body):
                body = []
            out.extend(indent + '///' + (' ' + b if b else '') for b in body)
            # Keep the line count: Doxygen's warnings name header lines.
            out.extend('' for _ in range(len(block) - len(body)))
            if len(body) > len(block):
                pass
        else:
            out.extend(indent + '//' + t for _, _, t in block)
        block = []

    for raw in lines:
        stripped = raw.strip()
        if stripped.startswith('/// @'):   # from hide_internals
            flush(False)
            out.append(raw)
            continue
        code, comment = code_and_comment(raw)
        comment_only = code.strip() == '' and comment is not None
        if comment_only and in_scope():
            col = raw.index('//')
            if last_trailing_col is not None and col == last_trailing_col and not block:
                out.append(raw[:col] + '///<' + escape(comment[2:]))
                continue
            last_trailing_col = None
            block.append((len(out), raw[:col], comment[2:]))
            continue
        last_trailing_col = None
        if block:
            if not seen_code:
                flush(stripped == '' or stripped.startswith('#'), file_doc=True)
            elif stripped == '' or ACCESS.match(raw) or stripped.startswith('}') or stripped == 'Q_OBJECT' \
                    or (stripped.startswith('#') and not stripped.startswith('#define')):
                flush(False)
            else:
                flush(True)
        if stripped and not stripped.startswith('#'):
            seen_code = True
        elif stripped.startswith('#'):
            seen_code = seen_code or not stripped.startswith('#pragma')
        # Trailing comments on members and enumerators.
        line_out = raw
        if comment is not None and not comment_only and stack and stack[-1] in ('class', 'enum') \
                and not stripped.startswith('}') and not stripped.startswith('#') \
                and re.search(r'[;,]\s*$|^\s*\w+\s*(=\s*[^{}]*)?$', code) and '{' not in code:
            line_out = code + '///<' + escape(comment[2:])
            last_trailing_col = len(code)
        out.append(line_out)
        # Brace bookkeeping on the code part.
        if stripped.startswith('#'):
            continue
        for ch in strip_literals(code):
            if ch == '{':
                kind = opens_scope(stmt) if in_scope() else None
                stack.append(kind or 'body')
                stmt = ''
            elif ch == '}':
                if stack:
                    stack.pop()
                stmt = ''
            elif ch == ';':
                stmt = ''
            else:
                stmt += ch
        stmt += ' '
        if in_scope() and ACCESS.match(stmt):
            stmt = ''
    flush(False)
    return '\n'.join(out)


def github_slug(heading):
    s = heading.strip().lower()
    s = re.sub(r'[^\w\- ]', '', s)
    return s.replace(' ', '-')


def filter_markdown(src, path):
    """GitHub names every heading's anchor after its text ("## Queues" is
    #queues); Doxygen needs an explicit label. Each heading below the title
    gets the label <page>-<slug>, and links to #slug or page.md#slug are
    pointed at it, so the same links work on GitHub and in the site."""
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    page = 'readme' if stem == 'readme' else stem

    def label(pg, slug):
        return re.sub(r'[^\w\-]', '-', pg + '-' + slug)

    out = []
    fence = None
    first_heading = True
    seen = {}
    for line in src.split('\n'):
        m = re.match(r'^\s*(```+|~~~+)', line)
        if m:
            if fence is None:
                fence = m.group(1)[0] * 3
            elif m.group(1).startswith(fence):
                fence = None
            out.append(line)
            continue
        if fence is not None:
            out.append(line)
            continue
        h = re.match(r'^(#{1,6})\s+(.*?)\s*$', line)
        if h and '{#' not in line:
            if first_heading and len(h.group(1)) == 1:
                first_heading = False
            else:
                slug = github_slug(h.group(2))
                n = seen.get(slug, 0)
                seen[slug] = n + 1
                if n:   # GitHub's anchor of a repeated heading: slug-1, slug-2, ...
                    slug = f'{slug}-{n}'
                line = f'{line.rstrip()} {{#{label(page, slug)}}}'
            out.append(line)
            continue

        def link(m):
            target = m.group(2)
            file_part, _, anchor = target.partition('#')
            if not anchor or re.match(r'^[a-z]+:', file_part):
                return m.group(0)
            if file_part == '':
                return f'{m.group(1)}#{label(page, anchor)}'
            if file_part.endswith('.md'):
                other = os.path.splitext(os.path.basename(file_part))[0].lower()
                return f'{m.group(1)}@ref {label(other, anchor)}'
            return m.group(0)
        out.append(re.sub(r'(\]\()([^)\s]+)(?=\))', link, line))
    return '\n'.join(out)


def main():
    path = sys.argv[1]
    with open(path, encoding='utf-8') as f:
        src = f.read()
    if path.endswith('.h'):
        src = filter_header(src, path)
    elif path.endswith('.md'):
        src = filter_markdown(src, path)
    sys.stdout.write(src)


if __name__ == '__main__':
    main()
