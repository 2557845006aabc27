#!/usr/bin/env bash
# Builds the documentation site with Doxygen (Debian's doxygen, installed
# when missing): the pages (docs/index.md, README.md, docs/*.md) and the API
# reference of the public headers, in build/docs/html. Any Doxygen warning
# fails the build (WARN_AS_ERROR in docs/Doxyfile); then every relative link
# and image of every generated page is checked (scripts/check_links.py).
# First, the pages' references are checked against the sources: each test
# the misuse table cites exists, each qiloop name of the porting tables is
# declared (scripts/check_doc_refs.py).
# The example screenshots in docs/images are committed; scripts/screenshots.sh
# regenerates them.
#
# Usage: scripts/docs.sh          then open build/docs/html/index.html
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh doxygen
start=$(date +%s)
python3 scripts/check_doc_refs.py
rm -rf build/docs
mkdir -p build/docs
doxygen docs/Doxyfile
python3 scripts/check_links.py build/docs/html
echo "docs: build/docs/html/index.html in $(( $(date +%s) - start )) s"
