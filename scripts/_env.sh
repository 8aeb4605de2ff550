# Shared by scripts/quickstart and scripts/test: find Python >= 3.12, make .venv and
# install the locked dependencies into it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TOLLGUARD_VENV:-$ROOT/.venv}"

find_python() {
    local candidates=("${PYTHON:-}" python3.13 python3.12 python3)
    local dir
    for dir in "$HOME"/.pyenv/versions/3.1[2-9]*/bin; do
        [ -d "$dir" ] && candidates+=("$dir/python3")
    done
    local py
    for py in "${candidates[@]}"; do
        [ -n "$py" ] || continue
        if command -v "$py" >/dev/null 2>&1 &&
            "$py" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
            command -v "$py"
            return 0
        fi
    done
    echo "tollguard: Python >= 3.12 is required (set PYTHON=/path/to/python3.12)" >&2
    return 1
}

# install_locked LOCK: make .venv, install exactly the versions of requirements/LOCK with
# every file's hash checked, then Tollguard itself with no dependency resolution and no
# unpinned build tools (setuptools is in the lock).
install_locked() {
    local lock="$1"
    [ -x "$VENV/bin/python" ] || "$(find_python)" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes \
        -r "$ROOT/requirements/$lock"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        --no-build-isolation -e "$ROOT"
}
