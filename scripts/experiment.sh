#!/usr/bin/env bash
# The queueing experiment: c one-slot sluice-backends with exponential service (sleep mode), an
# open-loop Poisson load from sluice-loadgen, and a sweep of rho = lambda / (c mu) through Sluice
# (shared + least_connections = M/M/c, per_backend + round_robin / least_connections), HAProxy with
# maxconn 1 (when installed), finite queues (M/M/c/K) and persistent connections; or (--listener-mode http)
# the http arm: persistent client connections through a `mode: http` listener, each request a job. Writes, in the
# results directory: runs/<run>/ (config, logs, per-request CSV, scrapes), runs.csv (one row per run),
# report.md (measured vs Erlang C, c x M/M/1, E_c/M/1, M/M/c/K) and the PNG plots.
#
#   scripts/experiment.sh --quick [--out DIR]     a few short runs + end-to-end assertions (< 60 s)
#   scripts/experiment.sh [--out DIR] [--publish docs]   the full sweep (~40 min; printed at its start)
#   scripts/experiment.sh --listener-mode http [--publish docs]   the http arm (~35 min): K = 4 persistent
#                                                  connections through mode: http and mode: tcp, 20,000 requests per rho
#   scripts/experiment.sh --analyze-only --out DIR       re-run the analysis of an earlier sweep
#   scripts/experiment.sh --help                         every option (of scripts/experiment/sweep.py)
#   scripts/experiment.sh --scaling [--publish docs]     the dynamic scaling experiment (~11 min): step, ramp and
#                                                  sine profiles, four scaling policies side by side (scaling.py)
#   scripts/experiment.sh --scaling --quick              its pipeline end to end (< 60 s)
#   scripts/experiment.sh --scaling --help               its options
#
# Binaries: SLUICE_BINARY, SLUICE_BACKEND_BINARY, SLUICE_LOADGEN_BINARY, else build/ (built if missing).
# Python: Debian's /usr/bin/python3 with python3-numpy and python3-matplotlib (scripts/install-deps.sh).
# Default results directory: results/<UTC time> (gitignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the source tree
python=/usr/bin/python3  # Debian's: its python3-* packages, whatever pyenv or a venv put first on PATH
if ! "$python" -c 'import numpy, matplotlib' 2> /dev/null; then
  echo "experiment: $python lacks numpy/matplotlib; run scripts/install-deps.sh (python3-numpy python3-matplotlib)" >&2
  exit 1
fi

driver_script="$root/scripts/experiment/sweep.py"
case " $* " in
  *" --scaling "*) driver_script="$root/scripts/experiment/scaling.py" ;;
esac
case " $* " in
  *" --help "* | *" -h "*) exec "$python" "$driver_script" --help ;;
esac

args=("$@")
if [[ " $* " != *" --out "* && " $* " != *" --out="* ]]; then
  args+=(--out "$root/results/$(date -u +%Y%m%dT%H%M%SZ)")
fi

if [ -z "${SLUICE_BINARY:-}" ] || [ -z "${SLUICE_BACKEND_BINARY:-}" ] || [ -z "${SLUICE_LOADGEN_BINARY:-}" ]; then
  if [ ! -x "$root/build/sluice" ] || [ ! -x "$root/build/tools/sluice-backend" ] || [ ! -x "$root/build/tools/sluice-loadgen" ]; then
    cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
    cmake --build "$root/build" --target sluice sluice-backend sluice-loadgen
  fi
  export SLUICE_BINARY=${SLUICE_BINARY:-$root/build/sluice}
  export SLUICE_BACKEND_BINARY=${SLUICE_BACKEND_BINARY:-$root/build/tools/sluice-backend}
  export SLUICE_LOADGEN_BINARY=${SLUICE_LOADGEN_BINARY:-$root/build/tools/sluice-loadgen}
fi

# An overloaded run keeps thousands of clients queued: one descriptor each in the loadgen and Sluice.
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true

# The driver stops every process it started (each run's Processes group); this trap covers the driver
# itself being interrupted.
driver=""
cleanup() { [ -n "$driver" ] && kill "$driver" 2> /dev/null && wait "$driver" 2> /dev/null || true; }
trap cleanup EXIT INT TERM
"$python" "$driver_script" "${args[@]}" &
driver=$!
wait "$driver"
status=$?
driver=""
exit "$status"
