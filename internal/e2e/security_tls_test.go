package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/directmethods/iotdevice/device"
)

// TestTLSVerifiedByDefault: without a custom CA (the system roots) the
// local hub's certificate is refused, and so is a certificate that does
// not cover the name the client expects; both stop Run at once with
// CodeTLS and an x509 reason, without retrying.
func TestTLSVerifiedByDefault(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			hub := startHub(t, "dev-1")
			cs, err := hub.ConnectionString("dev-1")
			if err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				name     string
				tls      *tls.Config
				wantText string
			}{
				{"system roots", nil, "x509: certificate signed by unknown authority"},
				{"wrong host name", &tls.Config{RootCAs: hub.CertPool(), ServerName: "not-the-hub.example"}, "x509: certificate is valid for"},
			}
			for _, tt := range tests {
				states := newStateLog()
				opts := deviceOptions(t, hub, tr)
				states.tweak(opts)
				opts.TLSConfig = tt.tls
				backoffCalls := 0
				opts.Backoff = func(int) time.Duration { backoffCalls++; return time.Millisecond }
				client, err := device.NewClientFromConnectionString(cs, opts)
				if err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				err = client.Run(ctx, echoMux())
				cancel()
				var de *device.Error
				if !errors.As(err, &de) || de.Code != device.CodeTLS {
					t.Errorf("%s: Run = %v, want CodeTLS", tt.name, err)
					continue
				}
				if !strings.Contains(err.Error(), tt.wantText) {
					t.Errorf("%s: error %q does not say %q", tt.name, err, tt.wantText)
				}
				if n := states.count(device.StateConnecting); n != 1 || backoffCalls != 0 {
					t.Errorf("%s: %d attempts, %d backoff calls; want 1 and 0", tt.name, n, backoffCalls)
				}
			}
		})
	}
}

// insecureSetting matches code that turns certificate verification off.
var insecureSetting = regexp.MustCompile(`InsecureSkipVerify\s*(:|=)\s*true`)

// TestNoCodeSkipsVerification greps every non-test Go file of the module:
// no code path may set InsecureSkipVerify.
func TestNoCodeSkipsVerification(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		files++
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(src), "\n") {
			if insecureSetting.MatchString(line) {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s:%d sets InsecureSkipVerify: %s", rel, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 20 {
		t.Fatalf("only %d Go files found under %s: the walk is looking in the wrong place", files, root)
	}
	for _, probe := range []string{"InsecureSkipVerify: true", "c.InsecureSkipVerify = true", "InsecureSkipVerify:true"} {
		if !insecureSetting.MatchString(probe) {
			t.Errorf("the pattern misses %q", probe)
		}
	}
}
