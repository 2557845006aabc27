#!/usr/bin/env python3
"""Checks that the documentation names only things that exist (stdlib only).

- Every test a page cites as `tests/<file>.cpp` followed by `Suite.Name`
  (as docs/misuse.md and docs/run-modes.md do) is defined in that file by a
  TEST / TEST_F / TEST_P / TYPED_TEST / QILOOP_TEST* macro; every `compile_fail.NAME` is
  a qiloop_compile_check of tests/compile_fail/CMakeLists.txt.
- Every qiloop name in docs/porting.md's tables (qi::name, QiName) is
  declared in the public headers.
Prints each dangling reference and exits 1 when there is one.
Usage: scripts/check_doc_refs.py   (from anywhere)
"""
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_MACRO = re.compile(r'^\s*(?:TEST|TEST_F|TEST_P|TYPED_TEST|TYPED_TEST_P|QILOOP_TEST\w*)\(\s*(\w+)\s*,\s*(\w+)', re.M)


def tests_of(path, cache={}):
    if path not in cache:
        with open(os.path.join(ROOT, path), encoding='utf-8') as f:
            cache[path] = {f'{a}.{b}' for a, b in TEST_MACRO.findall(f.read())}
    return cache[path]


def check_test_refs(page, errors):
    with open(os.path.join(ROOT, page), encoding='utf-8') as f:
        lines = f.read().split('\n')
    with open(os.path.join(ROOT, 'tests/compile_fail/CMakeLists.txt'), encoding='utf-8') as f:
        compile_checks = set(re.findall(r'qiloop_compile_check\((\w+)', f.read()))
    count = 0
    for n, line in enumerate(lines, 1):
        current = None
        for token in re.findall(r'`([^`]+)`', line):
            if re.fullmatch(r'(tests|python-free-examples)/[\w/]+\.cpp', token):
                current = token
                if not os.path.exists(os.path.join(ROOT, token)):
                    errors.append(f'{page}:{n}: no file {token}')
                    current = None
            elif m := re.fullmatch(r'compile_fail\.(\w+)', token):
                count += 1
                if m.group(1) not in compile_checks:
                    errors.append(f'{page}:{n}: no compile check {token} in tests/compile_fail/CMakeLists.txt')
            elif re.fullmatch(r'[A-Z]\w*\.[A-Z]\w*', token) and current:
                count += 1
                if token not in tests_of(current):
                    errors.append(f'{page}:{n}: no test {token} in {current}')
    return count


def header_words():
    words = set()
    for d in ('qiloop/include', 'qiloop/testing/include', 'plugin/include'):
        for h in glob.glob(os.path.join(ROOT, d, '**', '*.h'), recursive=True):
            with open(h, encoding='utf-8') as f:
                text = f.read()
            # Declarations only: comments may mention names that do not exist.
            code = re.sub(r'//[^\n]*', '', text)
            words.update(re.findall(r'\b\w+\b', code))
    return words


def check_api_names(page, errors):
    words = header_words()
    with open(os.path.join(ROOT, page), encoding='utf-8') as f:
        text = f.read()
    count = 0
    for n, line in enumerate(text.split('\n'), 1):
        for code in re.findall(r'`([^`]+)`', line):
            for name in re.findall(r'\bqi::(\w+)', code) + re.findall(r'\b(Qi[A-Z]\w*)', code):
                count += 1
                if name not in words:
                    errors.append(f'{page}:{n}: {name} is not declared in the public headers')
    return count


def main():
    errors = []
    refs = sum(check_test_refs(p, errors) for p in ('docs/misuse.md', 'docs/run-modes.md'))
    names = check_api_names('docs/porting.md', errors)
    for e in errors:
        print(f'dangling reference: {e}')
    print(f'check_doc_refs: {refs} test references, {names} API names, {len(errors)} dangling')
    sys.exit(1 if errors else 0)


if __name__ == '__main__':
    main()
