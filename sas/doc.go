// Package sas owns the credentials of Azure IoT Hub identities: connection
// strings, shared access signature (SAS) tokens (signing them, and reading
// the claims of one obtained elsewhere), and the Credential interface that
// transports use to authenticate.
//
// It depends only on the standard library and the module's internal token
// code, so that every other package of the module can build on it.
//
// # Secrets
//
// Nothing in this package prints or logs a key or a token: ConnectionString
// and the credential types implement fmt.Stringer and slog.LogValuer with the
// secret parts redacted, and error messages name the offending field without
// echoing its value.
package sas
