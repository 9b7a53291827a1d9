#!/bin/bash
# Regenerates the calibration sets in this directory on the machine it runs
# on (as root, with runsc and the image: 'make runsc image'). Every set uses
# the same seed, so its steps (workloads and parameters) are the same and
# the sets differ only in the sandbox configuration. The neighbour is a
# host process running the integer workload on every CPU for the whole run.
#
#   ZENNET=path/to/zennet KEY=path/to/benchmarker_key ./generate.sh
set -euo pipefail
cd "$(dirname "$0")"
ZENNET=${ZENNET:-../../bin/zennet}
KEY=${KEY:?KEY=an SSH private key to sign the sets with}
SEED=${SEED:-20261121}
STEPS=${STEPS:-16}
SECONDS_PER_STEP=${SECONDS_PER_STEP:-2.5}
export ZENNET_AGENT_BINARY=${ZENNET_AGENT_BINARY:-$(realpath "$ZENNET")}

run() { # name note args...
	local name=$1 note=$2
	shift 2
	echo "== $name: $note" >&2
	"$ZENNET" bench run -o "$name.json" --seed "$SEED" --steps "$STEPS" --seconds "$SECONDS_PER_STEP" \
		--note "$note; host load before: $(cut -d' ' -f1-3 /proc/loadavg)" -i "$KEY" "$@" >/dev/null
}

with_neighbour() { # name note args...
	local name=$1 note=$2
	shift 2
	"$ZENNET" agent bench int --param kernel=mix --seconds 900 >/dev/null 2>&1 &
	local pid=$!
	sleep 1
	run "$name" "$note" "$@" || { kill "$pid"; exit 1; }
	kill "$pid"
	wait "$pid" 2>/dev/null || true
}

run systrap "platform systrap, no quota, no neighbour of ours" --platform systrap
with_neighbour systrap-neighbour "platform systrap, no quota, neighbour: host process running int on every CPU" --platform systrap
run ptrace "platform ptrace, no quota, no neighbour of ours" --platform ptrace
with_neighbour ptrace-neighbour "platform ptrace, no quota, neighbour: host process running int on every CPU" --platform ptrace
run systrap-cpus1 "platform systrap, CPU quota 1 core, no neighbour of ours" --platform systrap --cpus 1
