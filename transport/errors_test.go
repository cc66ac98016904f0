package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/directmethods/iotdevice/sas"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"connection lost", fmt.Errorf("mqtt: %w: EOF", ErrConnLost), Retriable},
		{"server busy", fmt.Errorf("connack 3: %w", ErrServerBusy), Retriable},
		{"throttled", fmt.Errorf("429: %w", ErrThrottled), Throttled},
		{"unauthorized", fmt.Errorf("connack 5: %w", ErrUnauthorized), Fatal},
		{"identity not found", fmt.Errorf("%w", ErrIdentityNotFound), Fatal},
		{"fixed token expired", fmt.Errorf("token: %w", sas.ErrTokenExpired), Fatal},
		{"token for another device", fmt.Errorf("token: %w", sas.ErrWrongResource), Fatal},
		{"certificate missing", sas.ErrNeedCertificate, Fatal},
		{"untrusted CA", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, Fatal},
		{"wrong host name", fmt.Errorf("dial: %w", x509.HostnameError{Host: "evil"}), Fatal},
		{"expired certificate", x509.CertificateInvalidError{Reason: x509.Expired}, Fatal},
		{"cancelled", fmt.Errorf("dial: %w", context.Canceled), Canceled},
		{"dial deadline", fmt.Errorf("dial: %w", context.DeadlineExceeded), Retriable},
		{"connection refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, Retriable},
		{"EOF", io.EOF, Retriable},
		{"unknown", errors.New("something odd"), Retriable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestConfigAddressing(t *testing.T) {
	cred, err := sas.NewKeyCredential("MDEyMzQ1Njc4OWFiY2RlZg==", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cfg                       Config
		wantAddr, wantID, wantRes string
		wantServerName            string
	}{
		{Config{HostName: "h.example", DeviceID: "d", Credential: cred}, "h.example:8883", "d", "h.example/devices/d", "h.example"},
		{Config{HostName: "h.example", DeviceID: "d", ModuleID: "m", Port: 9000, Credential: cred}, "h.example:9000", "d/m", "h.example/devices/d/modules/m", "h.example"},
		{Config{HostName: "h.example", GatewayHostName: "edge.local", DeviceID: "d", Credential: cred}, "edge.local:8883", "d", "h.example/devices/d", "edge.local"},
		{Config{HostName: "h.example", GatewayHostName: "::1", DeviceID: "d", Credential: cred}, "[::1]:8883", "d", "h.example/devices/d", "::1"},
	}
	for _, tt := range tests {
		if got := tt.cfg.Address(8883); got != tt.wantAddr {
			t.Errorf("Address = %q, want %q", got, tt.wantAddr)
		}
		if got := tt.cfg.ClientID(); got != tt.wantID {
			t.Errorf("ClientID = %q, want %q", got, tt.wantID)
		}
		if got := tt.cfg.Resource(); got != tt.wantRes {
			t.Errorf("Resource = %q, want %q", got, tt.wantRes)
		}
		tc, err := tt.cfg.ClientTLS()
		if err != nil || tc.ServerName != tt.wantServerName || tc.MinVersion < tls.VersionTLS12 || tc.InsecureSkipVerify {
			t.Errorf("ClientTLS = %+v, %v", tc, err)
		}
	}
	if _, err := (&Config{HostName: "h"}).ClientTLS(); err == nil {
		t.Error("ClientTLS without a credential succeeded")
	}
}
