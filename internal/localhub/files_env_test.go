package localhub

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteEnvFiles(t *testing.T) {
	dir := shortDir(t)
	h := startHub(t, Options{Dir: dir, HostName: "edge.local", Devices: []string{"edge-1", "edge-1/mod-a", "edge-1/mod-b"}})
	out := filepath.Join(dir, "out dir")
	if err := h.WriteConnectionFiles(out); err != nil {
		t.Fatal(err)
	}
	for _, identity := range []string{"edge-1/mod-a", "edge-1/mod-b"} {
		env, err := h.EdgeEnvironment(identity)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(out, EnvFileName(identity)))
		if err != nil {
			t.Fatal(err)
		}
		module := identity[len("edge-1/"):]
		want := "IOTEDGE_WORKLOADURI=unix://" + filepath.Join(dir, "workload.sock") + "\n" +
			"IOTEDGE_DEVICEID=edge-1\n" +
			"IOTEDGE_MODULEID=" + module + "\n" +
			"IOTEDGE_MODULEGENERATIONID=" + env["IOTEDGE_MODULEGENERATIONID"] + "\n" +
			"IOTEDGE_IOTHUBHOSTNAME=edge.local\n" +
			"IOTEDGE_GATEWAYHOSTNAME=edge.local\n" +
			"IOTEDGE_APIVERSION=2019-01-30\n" +
			"IOTEDGE_AUTHSCHEME=sasToken\n"
		if diff := cmp.Diff(want, string(b)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", identity, diff)
		}
		if env["IOTEDGE_MODULEGENERATIONID"] == "" {
			t.Error("empty generation id")
		}
	}
	if _, err := os.Stat(filepath.Join(out, "edge-1.env")); !os.IsNotExist(err) {
		t.Errorf("an env file for the device: %v", err)
	}
}

func TestGenerationIDStableAcrossRestarts(t *testing.T) {
	dir := shortDir(t)
	first := startHub(t, Options{Dir: dir, Devices: []string{"d/m"}})
	env1, err := first.EdgeEnvironment("d/m")
	if err != nil {
		t.Fatal(err)
	}
	first.Close()
	second := startHub(t, Options{Dir: dir})
	env2, err := second.EdgeEnvironment("d/m")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(env1, env2); diff != "" {
		t.Errorf("environment changed across a restart (-first +second):\n%s", diff)
	}
}

func TestShellValue(t *testing.T) {
	for in, want := range map[string]string{
		"unix:///tmp/a/workload.sock": "unix:///tmp/a/workload.sock",
		"unix:///tmp/a b/w.sock":      `'unix:///tmp/a b/w.sock'`,
		"it's":                        `'it'\''s'`,
		"":                            "",
	} {
		if got := shellValue(in); got != want {
			t.Errorf("shellValue(%q) = %q, want %q", in, got, want)
		}
	}
}
