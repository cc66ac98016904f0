package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/directmethods/iotdevice/internal/localhub"
)

// dpsFlags are the flags of the Device Provisioning Service the hub plays.
type dpsFlags struct {
	groups      string
	enrollments string
	retryAfter  time.Duration
}

// register defines the flags on fs.
func (f *dpsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.groups, "enrollment-groups", "group-1", "comma-separated symmetric-key enrollment groups of the Device Provisioning Service to create if missing")
	fs.StringVar(&f.enrollments, "enrollments", "", "comma-separated individual symmetric-key enrollments (registration ids) to create if missing")
	fs.DurationVar(&f.retryAfter, "dps-retry-after", 3*time.Second, "the retry-after of the Device Provisioning Service's answers, and how long an assignment takes")
}

// options are the hub's DPS options.
func (f *dpsFlags) options() localhub.DPSOptions {
	return localhub.DPSOptions{RetryAfter: f.retryAfter}
}

// ensureEnrollments creates the enrollments the flags name that do not
// exist yet; those kept from an earlier run keep their keys.
func ensureEnrollments(hub *localhub.Hub, f dpsFlags) error {
	for _, list := range []struct {
		ids   []string
		group bool
	}{{splitList(f.groups), true}, {splitList(f.enrollments), false}} {
		for _, id := range list.ids {
			if _, ok := hub.LookupEnrollment(list.group, id); ok {
				continue
			}
			var err error
			if list.group {
				_, err = hub.PutEnrollmentGroup(id, localhub.EnrollmentSpec{})
			} else {
				_, err = hub.PutEnrollment(id, localhub.EnrollmentSpec{})
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// printProvisioning writes the Device Provisioning Service's ID scope,
// service connection string and enrollments, and the command that
// provisions a device of the first group and serves its methods. The
// command passes the group key in the environment, where ps does not show
// it.
func printProvisioning(w io.Writer, hub *localhub.Hub, f dpsFlags, caFile string) {
	fmt.Fprintf(w, "Device Provisioning Service (on the same ports), ID scope %s:\n", hub.IDScope())
	fmt.Fprintf(w, "  Service connection string: %s\n", hub.DPSConnectionString())
	groups := splitList(f.groups)
	for _, id := range groups {
		if e, ok := hub.LookupEnrollment(true, id); ok {
			fmt.Fprintf(w, "  Enrollment group %s: primary key %s\n", id, e.PrimaryKey)
		}
	}
	for _, id := range splitList(f.enrollments) {
		if e, ok := hub.LookupEnrollment(false, id); ok {
			fmt.Fprintf(w, "  Enrollment %s: primary key %s\n", id, e.PrimaryKey)
		}
	}
	fmt.Fprintln(w)
	if len(groups) == 0 {
		return
	}
	e, ok := hub.LookupEnrollment(true, groups[0])
	if !ok || e.PrimaryKey == "" {
		return
	}
	fmt.Fprintf(w, "Provision a device of group %s (any registration id) and serve its methods, from the repository's root:\n\n  %s\n\n",
		groups[0], provisionCommand(hub, e.PrimaryKey, caFile, "device-"+groups[0]))
}

// provisionCommand is the command that runs examples/provision against
// the hub as registrationID of a group with groupKey, over MQTT.
func provisionCommand(hub *localhub.Hub, groupKey, caFile, registrationID string) string {
	return "DPS_GROUP_KEY=" + shellQuote(groupKey) +
		" go run ./examples/provision -provisioning-host " + shellQuote(hub.HostName()) +
		" -port " + strconv.Itoa(hub.MQTTPort()) +
		" -ca " + shellQuote(caFile) +
		" -id-scope " + hub.IDScope() +
		" -registration-id " + shellQuote(registrationID)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '/') {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}
