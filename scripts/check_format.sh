#!/usr/bin/env bash
# Fails when a tracked C++ file is not formatted with clang-format-19 (the pinned version).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format-19 >/dev/null; then
  echo "SKIP: clang-format-19 not installed (scripts/setup.sh installs it)"
  exit 77
fi
git ls-files -z '*.cc' '*.h' | xargs -0 clang-format-19 --dry-run -Werror
echo "format: all files formatted"
