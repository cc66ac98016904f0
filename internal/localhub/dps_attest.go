package localhub

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/directmethods/iotdevice/internal/sastoken"
	"github.com/directmethods/iotdevice/sas"
)

// deviceProof is what a device presents to DPS: a SAS token (the MQTT
// password or the HTTPS Authorization header), or else its TLS client
// certificate chain.
type deviceProof struct {
	token string
	chain certChain
}

// errNoEnrollment, errEnrollmentDisabled and ErrUnauthorized's other
// wrappings tell, in logs only, why a device was refused; every refusal is
// the same 401 on the wire, so that it does not reveal whether an
// enrollment exists.
var (
	errNoEnrollment       = errors.New("no enrollment attests the device")
	errEnrollmentDisabled = errors.New("the enrollment is disabled")
)

// attestation is an enrollment that attested a device and the credential
// the device will use at the hub.
type attestation struct {
	enrollment *enrollment
	credential deviceCredential
}

// attest finds the enrollment that attests registrationID with proof,
// in idScope, at now: an individual enrollment of that registration id
// if there is one (DPS then considers no group), else the first group
// whose key or signing certificate the proof matches. A symmetric-key
// device signs its token with the enrollment's primary or secondary key,
// or with the key derived from its group's (sas.DeriveDeviceKey); an
// X.509 device presents a certificate whose CN is its registration id,
// registered in its individual enrollment or chaining to its group's
// signing certificate ("Use MQTT to communicate with DPS", "Symmetric key
// attestation", "X.509 certificate attestation", learn.microsoft.com).
// Errors wrap ErrUnauthorized.
func (d *dps) attest(idScope, registrationID string, proof deviceProof, now time.Time) (attestation, error) {
	d.mu.Lock()
	scope := d.idScope
	individual := d.enrollments[strings.ToLower(registrationID)]
	groups := make([]*enrollment, 0, len(d.groups))
	for _, g := range d.groups {
		groups = append(groups, g)
	}
	d.mu.Unlock()
	slices.SortFunc(groups, func(a, b *enrollment) int { return strings.Compare(a.id(), b.id()) })

	if !strings.EqualFold(idScope, scope) {
		return attestation{}, fmt.Errorf("%w: unknown ID scope %q", ErrUnauthorized, clip(idScope))
	}
	var a attestation
	var err error
	if proof.token != "" {
		a, err = attestToken(registrationID, idScope, proof.token, individual, groups, now)
	} else {
		a, err = attestCertificate(registrationID, proof.chain, individual, groups, now)
	}
	if err != nil {
		return attestation{}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	if a.enrollment.disabled() {
		return attestation{}, fmt.Errorf("%w: %s %q: %w", ErrUnauthorized, a.enrollment.kind(), a.enrollment.id(), errEnrollmentDisabled)
	}
	return a, nil
}

// attestToken checks a device's SAS token: resource
// "{idScope}/registrations/{registrationID}", key name "registration".
func attestToken(registrationID, idScope, token string, individual *enrollment, groups []*enrollment, now time.Time) (attestation, error) {
	t, err := sastoken.Parse(token)
	if err != nil {
		return attestation{}, err
	}
	if t.KeyName != sas.ProvisioningKeyName {
		return attestation{}, fmt.Errorf("the token's key name (skn) is %q, not %q", clip(t.KeyName), sas.ProvisioningKeyName)
	}
	if !t.Covers(sas.ProvisioningResource(idScope, registrationID)) {
		return attestation{}, sas.ErrWrongResource
	}
	if individual != nil {
		if !individual.symmetricKey() {
			return attestation{}, fmt.Errorf("enrollment %q attests by certificate, not by key", individual.id())
		}
		if err := verifyEnrollmentToken(t, individual.keys, now); err != nil {
			return attestation{}, err
		}
		return attestation{enrollment: individual, credential: deviceCredential{primaryKey: individual.keys[0], secondaryKey: individual.keys[1]}}, nil
	}
	for _, g := range groups {
		if !g.symmetricKey() {
			continue
		}
		var derived []string
		for _, k := range g.keys {
			dk, err := sas.DeriveDeviceKey(k, registrationID)
			if err != nil {
				return attestation{}, err
			}
			derived = append(derived, dk)
		}
		err := verifyEnrollmentToken(t, derived, now)
		if errors.Is(err, sastoken.ErrBadSignature) {
			continue
		}
		if err != nil {
			return attestation{}, err
		}
		return attestation{enrollment: g, credential: deviceCredential{primaryKey: derived[0], secondaryKey: derived[1]}}, nil
	}
	return attestation{}, errNoEnrollment
}

// verifyEnrollmentToken checks a token against an enrollment's keys:
// sastoken.ErrBadSignature when neither signed it.
func verifyEnrollmentToken(t *sastoken.Token, keys []string, now time.Time) error {
	err := sastoken.ErrBadSignature
	for _, k := range keys {
		key, decodeErr := sas.DecodeKey(k)
		if decodeErr != nil {
			return decodeErr
		}
		if err = t.Verify(key, now); !errors.Is(err, sastoken.ErrBadSignature) {
			return err
		}
	}
	return err
}

// attestCertificate checks a device's TLS client certificate chain.
func attestCertificate(registrationID string, chain certChain, individual *enrollment, groups []*enrollment, now time.Time) (attestation, error) {
	if len(chain) == 0 {
		return attestation{}, errors.New("neither a token nor a client certificate presented")
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return attestation{}, fmt.Errorf("parse the client certificate: %w", err)
	}
	if !strings.EqualFold(leaf.Subject.CommonName, registrationID) {
		return attestation{}, fmt.Errorf("the certificate's CN %q is not the registration id", clip(leaf.Subject.CommonName))
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return attestation{}, errors.New("the client certificate is not valid now")
	}
	if individual != nil {
		if individual.symmetricKey() {
			return attestation{}, fmt.Errorf("enrollment %q attests by key, not by certificate", individual.id())
		}
		tp := thumbprint(leaf.Raw)
		var cred deviceCredential
		matched := false
		for i, c := range individual.certs {
			t := thumbprint(c.Raw)
			matched = matched || t == tp
			if i == 0 {
				cred.primaryThumbprint = t
			} else {
				cred.secondaryThumbprint = t
			}
		}
		if !matched {
			return attestation{}, fmt.Errorf("the client certificate is not enrollment %q's", individual.id())
		}
		return attestation{enrollment: individual, credential: cred}, nil
	}
	for _, g := range groups {
		if g.symmetricKey() {
			continue
		}
		if _, err := verifyChain(chain, g.certs, now); err == nil {
			return attestation{enrollment: g, credential: deviceCredential{caCerts: g.certs}}, nil
		}
	}
	return attestation{}, errNoEnrollment
}
