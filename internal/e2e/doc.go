// Package e2e holds the end-to-end tests: the SDK's device.Client against
// the local hub, over every transport, on loopback. It has no non-test code.
package e2e
