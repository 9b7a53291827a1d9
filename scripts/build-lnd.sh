#!/usr/bin/env bash
# build-lnd.sh builds the pinned Lightning test network binaries (lnd and
# lncli from the Go module proxy, btcd and btcctl with go install) and caches
# them under $ZENNET_CACHE_DIR (default ~/.cache/zennet):
#
#   $ZENNET_CACHE_DIR/lnd/$LND_VERSION/{lnd,lncli}
#   $ZENNET_CACHE_DIR/btcd/$BTCD_VERSION/{btcd,btcctl}
#
# pay/lntest finds them there; the Lightning tests skip, saying so, until
# they are built. A cached build is reused: the script prints the paths and
# exits. lnd cannot be built with go install (its go.mod has replace
# directives), so the script downloads the module, copies it and builds in
# the copy. GOFLAGS=-p=N (default 1) bounds the build's parallelism.
set -euo pipefail

LND_VERSION=${LND_VERSION:-v0.21.3-beta}
BTCD_VERSION=${BTCD_VERSION:-v0.26.2}
LND_TAGS="signrpc walletrpc chainrpc invoicesrpc peersrpc routerrpc"
CACHE=${ZENNET_CACHE_DIR:-$HOME/.cache/zennet}
GO=${GO:-go}
export GOFLAGS="${GOFLAGS:--p=1} -buildvcs=false"
export GOWORK=off CGO_ENABLED=0

lnd_dir=$CACHE/lnd/$LND_VERSION
btcd_dir=$CACHE/btcd/$BTCD_VERSION

if [[ ! -x $btcd_dir/btcd || ! -x $btcd_dir/btcctl ]]; then
	echo "build-lnd: building btcd $BTCD_VERSION (about a minute, once)" >&2
	rm -rf "$btcd_dir.tmp" && mkdir -p "$btcd_dir.tmp"
	GOBIN=$btcd_dir.tmp "$GO" install -trimpath \
		"github.com/btcsuite/btcd@$BTCD_VERSION" "github.com/btcsuite/btcd/cmd/btcctl@$BTCD_VERSION"
	rm -rf "$btcd_dir" && mv "$btcd_dir.tmp" "$btcd_dir"
fi

if [[ ! -x $lnd_dir/lnd || ! -x $lnd_dir/lncli ]]; then
	echo "build-lnd: building lnd $LND_VERSION (4-5 minutes cold, once)" >&2
	src=$("$GO" mod download -json "github.com/lightningnetwork/lnd@$LND_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	if [[ -z $src || ! -f $src/go.mod ]]; then
		echo "build-lnd: go mod download gave no module directory for lnd $LND_VERSION" >&2
		exit 1
	fi
	work=$(mktemp -d)
	trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
	cp -r "$src" "$work/lnd"
	chmod -R u+w "$work/lnd"
	rm -rf "$lnd_dir.tmp" && mkdir -p "$lnd_dir.tmp"
	(cd "$work/lnd" && "$GO" build -trimpath -tags="$LND_TAGS" -o "$lnd_dir.tmp/" ./cmd/lnd ./cmd/lncli)
	rm -rf "$lnd_dir" && mv "$lnd_dir.tmp" "$lnd_dir"
fi

echo "$lnd_dir/lnd"
echo "$lnd_dir/lncli"
echo "$btcd_dir/btcd"
echo "$btcd_dir/btcctl"
