# Shared by scripts/quickstart and scripts/test: find Python >= 3.12 and make .venv.
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

ensure_venv() {
    local extras="$1"
    if [ ! -x "$VENV/bin/python" ]; then
        "$(find_python)" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT$extras"
}
