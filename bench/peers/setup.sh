#!/usr/bin/env bash
# Create the two virtual environments bench_peers.py runs the libraries in, from the pinned
# requirement files next to this script. Idempotent: an environment whose recorded requirements
# hash matches its file is left alone; otherwise it is rebuilt from scratch.
#
#   ./setup.sh            # create or refresh both
#   ./setup.sh --force    # rebuild both
#
# PEERS_HOME    where the venvs go (default: ${XDG_CACHE_HOME:-~/.cache}/taskstream-peers, built
#               once per machine); nothing is written next to this script, which may be read-only.
# PEERS_PYTHON  interpreter to build them with (default: python3; needs the venv module,
#               on Debian: apt-get install python3-venv).
#
# Two environments because arq 0.28 pins redis-py < 6 while taskiq-redis 1.2 needs redis-py >= 6:
#   .venv         requirements-peers.txt   arq, saq, dramatiq, celery, rq, procrastinate, pgqueuer, ...
#   .venv-taskiq  requirements-taskiq.txt  taskiq + taskiq-redis (redis-py 8)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS_HOME="${PEERS_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/taskstream-peers}"
PY="${PEERS_PYTHON:-python3}"
FORCE=0
case "${1:-}" in
  "") ;;
  --force) FORCE=1 ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

say() { echo "setup: $*"; }

if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null; then
  echo "setup: $PY is missing or older than Python 3.9 (set PEERS_PYTHON)" >&2
  exit 1
fi
if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "setup: $PY has no venv/ensurepip module (Debian: apt-get install python3-venv)" >&2
  exit 1
fi
for tool in psql redis-benchmark; do
  command -v "$tool" >/dev/null 2>&1 || \
    say "note: $tool not found (needed for PostgreSQL libraries / --physical; Debian: postgresql-client, redis-tools)"
done

mkdir -p "$PEERS_HOME"
if command -v flock >/dev/null 2>&1; then  # one setup at a time per PEERS_HOME
  exec 9>"$PEERS_HOME/.setup.lock"
  flock 9
fi

build() {
  local name="$1" req="$HERE/$2"
  local dir="$PEERS_HOME/$name" stamp want
  stamp="$dir/.requirements.sha256"
  want="$(sha256sum < "$req" | cut -d' ' -f1)"
  if [[ $FORCE == 0 && -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    say "$dir is up to date ($2)"
    return
  fi
  if [[ -e "$dir" ]]; then
    if [[ ! -f "$dir/pyvenv.cfg" ]]; then
      echo "setup: $dir exists and is not a virtual environment; not touching it" >&2
      exit 1
    fi
    say "removing out-of-date $dir"
    rm -rf -- "$dir"
  fi
  say "creating $dir with $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
  "$PY" -m venv "$dir"
  say "installing $2 into $dir (pinned versions)"
  "$dir/bin/python" -m pip install --disable-pip-version-check --no-input --progress-bar off -r "$req"
  "$dir/bin/python" -m pip check || say "warning: pip check reported conflicts in $dir"
  echo "$want" > "$stamp"
  say "$dir ready"
}

build .venv requirements-peers.txt
build .venv-taskiq requirements-taskiq.txt
say "done: PEERS_HOME=$PEERS_HOME"
