package device_test

import (
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
	"github.com/directmethods/iotdevice/sas"
	"github.com/directmethods/iotdevice/transport/transporttest"
)

func TestConstructorsRejectBadConfig(t *testing.T) {
	cred, _ := sas.NewKeyCredential(testKeyB64, "", 0)
	fake := transporttest.NewFake(nil)
	withFake := func(o device.ClientOptions) *device.ClientOptions { o.Transport = fake; return &o }
	tests := []struct {
		name    string
		build   func() (*device.Client, error)
		wantErr error
	}{
		{"bad host", func() (*device.Client, error) {
			return device.NewClient("hub/x", "d", cred, withFake(device.ClientOptions{}))
		}, device.ErrInvalidConfig},
		{"empty device", func() (*device.Client, error) {
			return device.NewClient(testHost, "", cred, withFake(device.ClientOptions{}))
		}, device.ErrInvalidConfig},
		{"bad device char", func() (*device.Client, error) {
			return device.NewClient(testHost, "a/b", cred, withFake(device.ClientOptions{}))
		}, device.ErrInvalidConfig},
		{"nil credential", func() (*device.Client, error) {
			return device.NewClient(testHost, "d", nil, withFake(device.ClientOptions{}))
		}, device.ErrInvalidConfig},
		{"empty module", func() (*device.Client, error) {
			return device.NewModuleClient(testHost, "d", "", cred, withFake(device.ClientOptions{}))
		}, device.ErrInvalidConfig},
		{"negative timeout", func() (*device.Client, error) {
			return device.NewClient(testHost, "d", cred, withFake(device.ClientOptions{MethodTimeout: -1}))
		}, device.ErrInvalidConfig},
		{"bad port", func() (*device.Client, error) {
			return device.NewClient(testHost, "d", cred, withFake(device.ClientOptions{Port: 70000}))
		}, device.ErrInvalidConfig},
		{"negative pool", func() (*device.Client, error) {
			return device.NewClient(testHost, "d", cred, withFake(device.ClientOptions{MaxConcurrentMethods: -2}))
		}, device.ErrInvalidConfig},
		{"insecure TLS", func() (*device.Client, error) {
			return device.NewClient(testHost, "d", cred, withFake(device.ClientOptions{TLSConfig: &tls.Config{InsecureSkipVerify: true}}))
		}, device.ErrInvalidConfig},
		{"bad gateway", func() (*device.Client, error) {
			return device.NewClient(testHost, "d", cred, withFake(device.ClientOptions{GatewayHostName: "gw:443"}))
		}, device.ErrInvalidConfig},
		{"malformed connection string", func() (*device.Client, error) {
			return device.NewClientFromConnectionString("HostName=h;DeviceId", withFake(device.ClientOptions{}))
		}, sas.ErrInvalidConnectionString},
		{"x509 without certificate", func() (*device.Client, error) {
			return device.NewClientFromConnectionString("HostName=h;DeviceId=d;x509=true", withFake(device.ClientOptions{}))
		}, sas.ErrNeedCertificate},
		{"token lifetime with NewModuleClient", func() (*device.Client, error) {
			return device.NewModuleClient(testHost, "d", "m", cred, withFake(device.ClientOptions{TokenLifetime: time.Minute}))
		}, device.ErrInvalidConfig},
		{"certificate without x509", func() (*device.Client, error) {
			return device.NewX509ClientFromConnectionString("HostName=h;DeviceId=d;SharedAccessKey="+testKeyB64,
				tls.Certificate{}, withFake(device.ClientOptions{}))
		}, device.ErrInvalidConfig},
		{"x509 with a token lifetime", func() (*device.Client, error) {
			return device.NewX509ClientFromConnectionString("HostName=h;DeviceId=d;x509=true",
				tls.Certificate{}, withFake(device.ClientOptions{TokenLifetime: time.Minute}))
		}, device.ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.build()
			if !errors.Is(err, tt.wantErr) || c != nil {
				t.Errorf("got (%v, %v), want error %v", c, err, tt.wantErr)
			}
		})
	}
}

func TestConstructorsAccept(t *testing.T) {
	fake := &device.ClientOptions{Transport: transporttest.NewFake(nil)}
	for _, cs := range []string{
		"HostName=hub.example.net;DeviceId=dev-1;SharedAccessKey=" + testKeyB64,
		"HostName=hub.example.net;DeviceId=dev-1;ModuleId=mod-1;SharedAccessKey=" + testKeyB64,
		"HostName=hub.example.net;DeviceId=dev-1;SharedAccessKeyName=policy;SharedAccessKey=" + testKeyB64 + ";GatewayHostName=edge.local",
		"HostName=localhost;DeviceId=dev-1;SharedAccessKey=" + testKeyB64,
	} {
		if _, err := device.NewClientFromConnectionString(cs, fake); err != nil {
			t.Errorf("%s: %v", cs[:40], err)
		}
	}
	if _, err := device.NewClientFromConnectionString("HostName=h.example;DeviceId=d;SharedAccessKey="+testKeyB64, nil); err != nil {
		t.Errorf("nil options (default transport): %v", err)
	}
}
