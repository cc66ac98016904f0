package device

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
	"github.com/directmethods/iotdevice/transport"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want retryClass
	}{
		{"connection lost", fmt.Errorf("mqtt: %w: EOF", transport.ErrConnLost), retriable},
		{"server busy", fmt.Errorf("connack 3: %w", transport.ErrServerBusy), retriable},
		{"throttled", fmt.Errorf("429: %w", transport.ErrThrottled), throttled},
		{"unauthorized", fmt.Errorf("connack 5: %w", transport.ErrUnauthorized), fatal},
		{"identity not found", fmt.Errorf("%w", transport.ErrIdentityNotFound), fatal},
		{"fixed token expired", fmt.Errorf("token: %w", sas.ErrTokenExpired), fatal},
		{"token for another device", fmt.Errorf("token: %w", sas.ErrWrongResource), fatal},
		{"certificate missing", sas.ErrNeedCertificate, fatal},
		{"untrusted CA", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, fatal},
		{"wrong host name", fmt.Errorf("dial: %w", x509.HostnameError{Host: "evil"}), fatal},
		{"expired certificate", x509.CertificateInvalidError{Reason: x509.Expired}, fatal},
		{"cancelled", fmt.Errorf("dial: %w", context.Canceled), canceled},
		{"dial deadline", fmt.Errorf("dial: %w", context.DeadlineExceeded), retriable},
		{"connection refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, retriable},
		{"EOF", io.EOF, retriable},
		{"unknown", errors.New("something odd"), retriable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.err); got != tt.want {
				t.Errorf("classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
