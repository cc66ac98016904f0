package main

import (
	"strings"
	"testing"

	"github.com/directmethods/iotdevice/internal/localhub"
)

// TestEnsureEnrollments creates the enrollments of the flags once: a
// restart keeps their keys.
func TestEnsureEnrollments(t *testing.T) {
	dir := t.TempDir()
	f := dpsFlags{groups: "group-1, group-2", enrollments: "dev-1"}
	var keys []string
	for range 2 {
		hub, err := localhub.Start(t.Context(), localhub.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if err := ensureEnrollments(hub, f); err != nil {
			hub.Close()
			t.Fatal(err)
		}
		var got []string
		for _, e := range []struct {
			group bool
			id    string
		}{{true, "group-1"}, {true, "group-2"}, {false, "dev-1"}} {
			en, ok := hub.LookupEnrollment(e.group, e.id)
			if !ok || en.PrimaryKey == "" {
				t.Errorf("enrollment %s: %+v, %v", e.id, en, ok)
			}
			got = append(got, en.PrimaryKey)
		}
		hub.Close()
		if keys != nil && strings.Join(keys, ",") != strings.Join(got, ",") {
			t.Errorf("keys changed across a restart: %v, then %v", keys, got)
		}
		keys = got
	}
	hub, err := localhub.Start(t.Context(), localhub.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	if err := ensureEnrollments(hub, dpsFlags{groups: "-bad-"}); err == nil {
		t.Error("an invalid group id was accepted")
	}
}

// TestPrintProvisioning prints the ID scope, the service connection
// string and the command that provisions a device of the first group,
// with the key in the environment.
func TestPrintProvisioning(t *testing.T) {
	hub, err := localhub.Start(t.Context(), localhub.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	f := dpsFlags{groups: "group-1"}
	if err := ensureEnrollments(hub, f); err != nil {
		t.Fatal(err)
	}
	g, _ := hub.LookupEnrollment(true, "group-1")
	var out strings.Builder
	printProvisioning(&out, hub, f, "/tmp/my dir/ca.pem")
	for _, want := range []string{
		"ID scope " + hub.IDScope(),
		hub.DPSConnectionString(),
		"DPS_GROUP_KEY='" + g.PrimaryKey + "' go run ./examples/provision -provisioning-host localhost -port ",
		" -ca '/tmp/my dir/ca.pem' -id-scope " + hub.IDScope() + " -registration-id device-group-1",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printout lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "-group-key") {
		t.Errorf("the group key is passed as a flag, where ps shows it:\n%s", out.String())
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain-id_1.2": "plain-id_1.2", "/tmp/x/ca.pem": "/tmp/x/ca.pem",
		"a b": "'a b'", "k+/=": "'k+/='", "it's": `'it'\''s'`,
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
