#!/usr/bin/env bash
# The Python package as a user gets it: a fresh virtual environment on
# Debian's python3 (--system-site-packages, for Debian's setuptools, wheel
# and pytest: no package index is needed), `pip install ./python`, then
# pytest run from outside the source tree. Everything it writes goes to
# BUILD/python-package/; the source tree must come out as it went in.
#   bash tests/python_package.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
work="$2/python-package"
rm -rf "$work"
mkdir -p "$work/tmp" "$work/run"
export TMPDIR="$work/tmp"          # pip's and setup.py's scratch
export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ beside the tests

snapshot() { (cd "$src" && ls -A && find python | LC_ALL=C sort); }
before=$(snapshot)

/usr/bin/python3 -m venv --system-site-packages "$work/venv"
"$work/venv/bin/pip" install --quiet --no-build-isolation --no-index \
  --no-cache-dir "$src/python"

rc=0
(cd "$work/run" &&
 "$work/venv/bin/python" -m pytest -p no:cacheprovider -q "$src/python/tests") || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests"
  exit 1
fi
[ "$rc" -eq 0 ] || exit "$rc"

after=$(snapshot)
if [ "$before" != "$after" ]; then
  echo "installing or testing the package changed the source tree:"
  diff <(echo "$before") <(echo "$after") || true
  exit 1
fi
