package localhub

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/directmethods/iotdevice/sas"
)

// Files the Device Provisioning Service keeps in Options.Dir.
const (
	dpsStateFileName = "dps.json"    // ID scope, keys, enrollments, registrations, operations; mode 0600
	idScopeFileName  = "idscope.txt" // the ID scope
	dpsCSFileName    = "dps.txt"     // the service connection string; mode 0600
)

// persistedDPS is the content of dps.json. Operations are kept so that a
// device polling across a restart of the hub gets its answer.
type persistedDPS struct {
	IDScope         string               `json:"idScope"`
	ServiceKey      string               `json:"serviceKey"`
	OperationPrefix string               `json:"operationPrefix"`
	Enrollments     []enrollmentDoc      `json:"enrollments"`
	Groups          []enrollmentDoc      `json:"enrollmentGroups"`
	Registrations   []registrationRecord `json:"registrations"`
	Operations      []operation          `json:"operations"`
}

// dpsStateFile writes dps.json atomically. Its mutex serialises the
// writes, so that the last one holds the newest state, and guards nothing
// else.
type dpsStateFile struct {
	dir string
	mu  sync.Mutex
}

// load reads dps.json; it returns nil and no error when there is none.
func (f *dpsStateFile) load() (*persistedDPS, error) {
	var st persistedDPS
	if found, err := readJSONFile(filepath.Join(f.dir, dpsStateFileName), &st); !found {
		return nil, err
	}
	return &st, nil
}

// save writes the state that snapshot returns.
func (f *dpsStateFile) save(snapshot func() *persistedDPS) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return writeJSONFile(filepath.Join(f.dir, dpsStateFileName), snapshot(), 0o600)
}

// save writes the state to dps.json, if the hub has a directory.
func (d *dps) save() error {
	if d.file == nil {
		return nil
	}
	return d.file.save(d.snapshot)
}

// saveOrLog saves after a change the caller has already made: a failure
// is logged, and the change stays in memory.
func (d *dps) saveOrLog() {
	if err := d.save(); err != nil {
		d.log.Error("localhub: saving the DPS state failed", "err", err)
	}
}

// snapshot returns the state to persist, sorted so that the file changes
// only with the state.
func (d *dps) snapshot() *persistedDPS {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := &persistedDPS{IDScope: d.idScope, ServiceKey: d.serviceKey, OperationPrefix: d.operationPrefix}
	for _, e := range d.enrollments {
		st.Enrollments = append(st.Enrollments, e.doc)
	}
	for _, g := range d.groups {
		st.Groups = append(st.Groups, g.doc)
	}
	for _, r := range d.registrations {
		st.Registrations = append(st.Registrations, *r)
	}
	for _, op := range d.operations {
		st.Operations = append(st.Operations, *op)
	}
	byID := func(a, b enrollmentDoc) int {
		return strings.Compare(a.RegistrationID+a.EnrollmentGroupID, b.RegistrationID+b.EnrollmentGroupID)
	}
	slices.SortFunc(st.Enrollments, byID)
	slices.SortFunc(st.Groups, byID)
	slices.SortFunc(st.Registrations, func(a, b registrationRecord) int {
		return strings.Compare(a.State.RegistrationID, b.State.RegistrationID)
	})
	slices.SortFunc(st.Operations, func(a, b operation) int { return strings.Compare(a.ID, b.ID) })
	return st
}

// restore loads a persisted state, validating it as the service API
// validates enrollments: a file edited by hand must not bring in what the
// API refuses.
func (d *dps) restore(st *persistedDPS) error {
	if st.IDScope == "" {
		return nil // written before anything: start anew
	}
	if _, err := sas.DecodeKey(st.ServiceKey); err != nil {
		return fmt.Errorf("localhub: %s: serviceKey: %w", dpsStateFileName, err)
	}
	d.idScope, d.serviceKey, d.operationPrefix = st.IDScope, st.ServiceKey, st.OperationPrefix
	for _, list := range []struct {
		docs  []enrollmentDoc
		group bool
		into  map[string]*enrollment
	}{{st.Enrollments, false, d.enrollments}, {st.Groups, true, d.groups}} {
		for _, doc := range list.docs {
			e, err := restoreEnrollment(doc, list.group, d.hostName)
			if err != nil {
				return fmt.Errorf("localhub: %s: %w", dpsStateFileName, err)
			}
			list.into[strings.ToLower(e.id())] = e
		}
	}
	for _, r := range st.Registrations {
		if validateRegistrationID(r.State.RegistrationID) != nil {
			return fmt.Errorf("localhub: %s: a registration with the invalid id %q", dpsStateFileName, clip(r.State.RegistrationID))
		}
		d.registrations[strings.ToLower(r.State.RegistrationID)] = &r
	}
	cutoff := time.Now().Add(-operationLifetime)
	for _, op := range st.Operations {
		if op.Created.After(cutoff) {
			d.operations[op.ID] = &op
		}
	}
	return nil
}

// restoreEnrollment validates a stored enrollment and keeps its server
// fields (etag and times).
func restoreEnrollment(doc enrollmentDoc, group bool, hostName string) (*enrollment, error) {
	kind, id := "enrollment", doc.RegistrationID
	if group {
		kind, id = "enrollment group", doc.EnrollmentGroupID
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", kind, clip(id), err)
	}
	e, err := decodeEnrollment(body, group, id, hostName)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", kind, clip(id), err)
	}
	e.doc.ETag, e.doc.CreatedDateTimeUTC, e.doc.LastUpdatedDateTimeUTC = doc.ETag, doc.CreatedDateTimeUTC, doc.LastUpdatedDateTimeUTC
	return e, nil
}

// writeFiles writes idscope.txt and dps.txt into dir.
func (d *dps) writeFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("localhub: create %s: %w", dir, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, idScopeFileName), []byte(d.scope()+"\n"), 0o644); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, dpsCSFileName), []byte(d.connectionString()+"\n"), 0o600)
}
