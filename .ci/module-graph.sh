#!/usr/bin/env bash
# A program that imports only device and transport/mqtt must not pull
# hardware, linter or x/tools modules into its module graph. This builds
# such a program in a throwaway module that requires this repository (by
# a replace directive) and checks its `go list -m all`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init example.com/consumer >/dev/null 2>&1
cat >main.go <<'GO'
package main

import (
	"log"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/transport/mqtt"
)

func main() {
	client, err := device.NewClientFromConnectionString("HostName=h.example;DeviceId=d;SharedAccessKey=AAAA",
		&device.ClientOptions{Transport: mqtt.NewDialer(nil)})
	if err != nil {
		log.Fatal(err)
	}
	client.Close()
}
GO
go mod edit -require=github.com/directmethods/iotdevice@v0.0.0-00010101000000-000000000000 \
	-replace=github.com/directmethods/iotdevice="$root"
go mod tidy
go build -o /dev/null .
modules=$(go list -m all)
forbidden='^(periph\.io/|honnef\.co/go/tools|github\.com/BurntSushi/toml|golang\.org/x/(tools|mod|exp))'
if bad=$(grep -E "$forbidden" <<<"$modules"); then
	echo "a consumer of device and transport/mqtt finds these modules in its graph:" >&2
	echo "$bad" >&2
	exit 1
fi
echo "$(wc -l <<<"$modules") modules in a consumer's graph, none of them forbidden:"
sed 's/^/  /' <<<"$modules"
