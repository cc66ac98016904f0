// Package clientcfg lets package edge read a device client's settings
// without package device exporting them: edge's method invoker calls as
// the client's module, through its gateway, with its credential and TLS
// configuration.
package clientcfg

import "github.com/directmethods/iotdevice/transport"

// Of returns the settings a *device.Client gives its transport on each
// connection. Package device sets it when it is initialised.
var Of func(client any) transport.Config
