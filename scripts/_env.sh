# Shared by scripts/quickstart and scripts/test: choose a Python >= 3.12, make .venv,
# put the locked pip into it, then install the locked dependencies (docs/dependencies.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TOLLGUARD_VENV:-$ROOT/.venv}"
PIP_QUIET=(--quiet --disable-pip-version-check)

# python_version PY: prints "3.13.0" when PY runs, is CPython >= 3.12 and can make a
# venv; prints nothing otherwise. A pyenv shim that names an uninstalled version fails
# to run, and so does not count.
python_version() {
    "$1" -c 'import sys, venv, ensurepip
if sys.version_info >= (3, 12) and sys.implementation.name == "cpython":
    print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || true
}

# find_python: $PYTHON when set (it must work); otherwise the newest working CPython
# >= 3.12 among python3.N and python3 on PATH and pyenv's versions ($HOME/.pyenv).
# Ties go to the first found in that order, so the choice is the same on every run of
# one machine.
find_python() {
    if [ -n "${PYTHON:-}" ]; then
        if [ -z "$(python_version "$PYTHON")" ]; then
            echo "tollguard: PYTHON=$PYTHON is not a working CPython >= 3.12 with venv" >&2
            return 1
        fi
        command -v "$PYTHON"
        return 0
    fi
    local candidates=() n dir
    for n in 20 19 18 17 16 15 14 13 12; do
        candidates+=("python3.$n")
    done
    candidates+=(python3)
    for dir in "$HOME"/.pyenv/versions/3.*/bin; do
        [ -x "$dir/python3" ] && candidates+=("$dir/python3")
    done
    local best="" best_key=0 py version key major minor micro
    for py in "${candidates[@]}"; do
        command -v "$py" >/dev/null 2>&1 || continue
        version="$(python_version "$py")"
        [ -n "$version" ] || continue
        IFS=. read -r major minor micro <<<"$version"
        key=$((major * 1000000 + minor * 1000 + micro))
        if [ "$key" -gt "$best_key" ]; then
            best="$(command -v "$py")"
            best_key=$key
        fi
    done
    if [ -z "$best" ]; then
        echo "tollguard: Python >= 3.12 with venv is required (set PYTHON=/path/to/python3.12)" >&2
        return 1
    fi
    echo "$best"
}

# make_venv: create $VENV with the chosen Python (once), then replace whatever pip that
# Python bundles with the pip pinned in requirements/bootstrap.txt, hash-checked. Old
# pips (23.x) mis-resolve a locked package that another one requires with an extra
# (`coverage[toml]`) and refuse the lock; the pinned one does not.
make_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        local py
        py="$(find_python)"
        echo "tollguard: making $VENV with $py (Python $(python_version "$py"), $("$py" -m pip --version 2>/dev/null | cut -d' ' -f1-2 || echo 'no pip'))" >&2
        "$py" -m venv "$VENV"
    fi
    local want have
    want="$(sed -n 's/^pip==\([^ ]*\).*/\1/p' "$ROOT/requirements/bootstrap.txt")"
    have="$("$VENV/bin/python" -m pip --version 2>/dev/null | cut -d' ' -f2)"
    if [ "$have" != "$want" ]; then
        "$VENV/bin/python" -m pip install "${PIP_QUIET[@]}" --require-hashes --no-deps \
            -r "$ROOT/requirements/bootstrap.txt"
        echo "tollguard: $VENV has pip $want (was ${have:-none})" >&2
    fi
}

# install_locked LOCK: install exactly the versions of requirements/LOCK with every
# file's hash checked, then Tollguard itself with no dependency resolution and no
# unpinned build tools (setuptools is in the lock).
install_locked() {
    local lock="$1"
    make_venv
    "$VENV/bin/python" -m pip install "${PIP_QUIET[@]}" --require-hashes -r "$ROOT/requirements/$lock"
    "$VENV/bin/python" -m pip install "${PIP_QUIET[@]}" --no-deps --no-build-isolation -e "$ROOT"
}
