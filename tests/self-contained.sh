#!/usr/bin/env bash
# tests/self-contained.sh [--help] - fails when a file of the repository
# points outside it. Users of Herald get this repository and nothing beside
# it, so the contract (docs/PROTOCOL.md), the conformance tooling
# (scripts/autobahn, docs/CONFORMANCE.md) and every reference must live
# here. Every git-tracked file except this one is searched for the
# development machine's shared folder (../shared/, /work/shared) and its
# package library (/work/.library); each hit is printed as file:line:text.
# Exit status: 0 none, 1 some, 2 not run from a git checkout.
# CTest runs it as the test self_contained.
set -euo pipefail

case "${1:-}" in
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
cd "$(dirname "$0")/.."
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "self-contained: $(pwd) is not a git checkout: nothing to check" >&2
    exit 2
fi

# git grep searches the tracked files as they are in the working tree, so
# an edit is caught before it is committed. Exit 1 from git grep is "no
# match"; anything above is an error of its own.
status=0
hits=$(git grep -n -I -F -e '../shared/' -e '/work/shared' -e '/work/.library' \
    -- . ':(exclude)tests/self-contained.sh') || status=$?
if [ "$status" -gt 1 ]; then
    echo "self-contained: git grep failed ($status)" >&2
    exit 2
fi
if [ -n "$hits" ]; then
    echo "self-contained: these lines point outside the repository; refer to"
    echo "docs/PROTOCOL.md, docs/CONFORMANCE.md, scripts/ ... instead:"
    printf '%s\n' "$hits"
    exit 1
fi
echo "self-contained: no tracked file points outside the repository"
