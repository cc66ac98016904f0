package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/device/edge/internal/workload"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport"
)

// NewModuleClient returns a client for the IoT Edge module
// this process runs as, from the variables the IoT Edge runtime sets:
//
//   - IOTEDGE_WORKLOADURI (unix:///… or http://…), IOTEDGE_DEVICEID,
//     IOTEDGE_MODULEID, IOTEDGE_MODULEGENERATIONID, IOTEDGE_IOTHUBHOSTNAME
//     and IOTEDGE_AUTHSCHEME (which must be sasToken) are required;
//   - IOTEDGE_GATEWAYHOSTNAME is the edge hub to connect to; without it the
//     client connects to the IoT hub itself;
//   - IOTEDGE_APIVERSION is the workload API version; default 2018-06-28,
//     the one every runtime serves.
//
// Tokens are signed by the workload API with the module's key, which the
// module never sees; they live device.ClientOptions.TokenLifetime (default 1 h)
// and are renewed at about 80 % of it. A refusal of the signature (an HTTP
// 4xx) stops Run with CodeUnauthorized, and the *WorkloadError in its
// chain names the call; a runtime that cannot be reached is retried like
// a network failure.
//
// The gateway's certificate is verified against the workload API's trust
// bundle, fetched here (ctx bounds the fetch), added to the roots of
// opts.TLSConfig or else to the system's. If the bundle cannot be fetched,
// the constructor fails: verification is never skipped.
//
// Like the official SDKs, it also accepts the form the IoT Edge simulator
// sets: EdgeHubConnectionString, a module connection string naming the
// gateway, and EdgeModuleCACertificateFile, the PEM file of the CA to
// trust. When EdgeHubConnectionString is set, the IOTEDGE_ variables are
// not read.
func NewModuleClient(ctx context.Context, opts *device.ClientOptions) (*device.Client, error) {
	return NewModuleClientFromLookup(ctx, os.LookupEnv, opts)
}

// NewModuleClientFromLookup is NewModuleClient reading the
// variables through lookup (os.LookupEnv's signature) instead of the
// process's environment: for tests, and for programs that keep the
// variables elsewhere.
func NewModuleClientFromLookup(ctx context.Context, lookup func(name string) (string, bool), opts *device.ClientOptions) (*device.Client, error) {
	env, err := readEdgeEnvironment(lookup)
	if err != nil {
		return nil, err
	}
	if env.connectionString != "" {
		return newSimulatedModuleClient(env, opts)
	}
	return newEdgeModuleClient(ctx, env, opts)
}

// newEdgeModuleClient builds a client whose tokens the workload API signs
// and whose TLS roots include its trust bundle.
func newEdgeModuleClient(ctx context.Context, env *edgeEnvironment, opts *device.ClientOptions) (*device.Client, error) {
	wl, err := workload.NewClient(env.workloadURI, env.apiVersion)
	if err != nil {
		return nil, fmt.Errorf("%w: IOTEDGE_WORKLOADURI: %w", device.ErrInvalidConfig, err)
	}
	bundle, err := wl.TrustBundle(ctx)
	if err != nil {
		return nil, fmt.Errorf("edge: fetch the IoT Edge trust bundle: %w", err)
	}
	o, err := withExtraRoots(opts, bundle, "the workload API's trust bundle")
	if err != nil {
		return nil, err
	}
	var lifetime time.Duration
	if opts != nil {
		lifetime = opts.TokenLifetime
	}
	if lifetime < 0 {
		return nil, fmt.Errorf("%w: TokenLifetime is negative", device.ErrInvalidConfig)
	}
	if lifetime == 0 {
		lifetime = sas.DefaultTokenLifetime
	}
	o.TokenLifetime = 0 // consumed by the credential
	cred := workloadCredential(wl, env.moduleID, env.generationID, lifetime)
	if o.GatewayHostName == "" {
		o.GatewayHostName = env.gatewayHostName // may be empty: the hub itself
	}
	return device.NewModuleClient(env.hubHostName, env.deviceID, env.moduleID, cred, &o)
}

// newSimulatedModuleClient builds a client from the IoT Edge simulator's
// connection string, trusting its CA file.
func newSimulatedModuleClient(env *edgeEnvironment, opts *device.ClientOptions) (*device.Client, error) {
	cs, err := sas.ParseConnectionString(env.connectionString)
	if err != nil {
		return nil, fmt.Errorf("%w: EdgeHubConnectionString: %w", device.ErrInvalidConfig, err)
	}
	if cs.ModuleID == "" {
		return nil, fmt.Errorf("%w: EdgeHubConnectionString names no ModuleId", device.ErrInvalidConfig)
	}
	o := opts
	if env.caFile != "" {
		pem, err := os.ReadFile(env.caFile)
		if err != nil {
			return nil, fmt.Errorf("%w: EdgeModuleCACertificateFile: %w", device.ErrInvalidConfig, err)
		}
		c, err := withExtraRoots(opts, pem, "EdgeModuleCACertificateFile")
		if err != nil {
			return nil, err
		}
		o = &c
	}
	return device.NewClientFromConnectionString(env.connectionString, o)
}

// withExtraRoots returns a copy of opts whose TLSConfig trusts the PEM
// certificates too, on top of its RootCAs or, without them, the system's.
func withExtraRoots(opts *device.ClientOptions, pem []byte, what string) (device.ClientOptions, error) {
	var o device.ClientOptions
	if opts != nil {
		o = *opts
	}
	var cfg *tls.Config
	if o.TLSConfig != nil {
		cfg = o.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	var pool *x509.CertPool
	if cfg.RootCAs != nil {
		pool = cfg.RootCAs.Clone()
	} else if sys, err := x509.SystemCertPool(); err == nil {
		pool = sys
	} else {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return o, fmt.Errorf("%w: %s holds no PEM certificate", device.ErrInvalidConfig, what)
	}
	cfg.RootCAs = pool
	o.TLSConfig = cfg
	return o, nil
}

// workloadCredential signs tokens through the workload API: the string to
// sign is the URL-encoded resource, a newline and the expiry in Unix
// seconds, as for a token signed with the key itself.
func workloadCredential(wl *workload.Client, moduleID, generationID string, lifetime time.Duration) sas.TokenFunc {
	return func(ctx context.Context, resource string) (string, time.Time, error) {
		expiry := time.Now().Add(lifetime + time.Second - 1).Truncate(time.Second)
		sr := url.QueryEscape(resource)
		se := strconv.FormatInt(expiry.Unix(), 10)
		digest, err := wl.Sign(ctx, moduleID, generationID, []byte(sr+"\n"+se))
		if err != nil {
			return "", time.Time{}, classifyWorkloadError(err)
		}
		sig := url.QueryEscape(base64Std(digest))
		return "SharedAccessSignature sr=" + sr + "&sig=" + sig + "&se=" + se, expiry, nil
	}
}

// classifyWorkloadError marks a signature the runtime refused (HTTP 4xx)
// as unauthorized, which stops the client: the module's identity or
// generation is no longer the runtime's. Other failures (the runtime is
// unreachable or failing) stay retriable.
func classifyWorkloadError(err error) error {
	var we *workload.Error
	if errors.As(err, &we) && we.Refused() {
		return fmt.Errorf("%w: %w", transport.ErrUnauthorized, err)
	}
	return err
}
