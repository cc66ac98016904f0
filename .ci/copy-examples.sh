#!/usr/bin/env bash
# Every example (but the local hub program and the benchmark, which are
# part of this repository's tooling) must compile, tests included, when
# its folder is copied into a fresh module that requires this one: so no
# example imports an internal package.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
status=0
for dir in "$root"/examples/*/; do
	name=$(basename "$dir")
	case "$name" in localhub | bench) continue ;; esac
	work=$(mktemp -d)
	cp -R "$dir". "$work"
	rm -f "$work/go.mod" "$work/go.sum"
	if (
		cd "$work"
		go mod init "example.com/$name" >/dev/null 2>&1
		go mod edit -require=github.com/directmethods/iotdevice@v0.0.0-00010101000000-000000000000 \
			-replace=github.com/directmethods/iotdevice="$root"
		go mod tidy >/dev/null 2>&1 || go mod tidy
		go vet ./...
	); then
		echo "examples/$name: compiles in a fresh module"
	else
		echo "examples/$name: does not compile when copied into a fresh module" >&2
		status=1
	fi
	rm -rf "$work"
done
exit $status
