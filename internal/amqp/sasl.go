package amqp

// SASL mechanism names offered by the server.
const (
	SASLAnonymous Symbol = "ANONYMOUS"
	SASLPlain     Symbol = "PLAIN"
	// SASLMSSBCBS is the mechanism Azure IoT SDKs use before authenticating
	// with CBS; it carries no credentials and is treated like ANONYMOUS.
	SASLMSSBCBS Symbol = "MSSBCBS"
)

// SASLCode is the outcome code of a SASL exchange (section 5.3.3.6).
type SASLCode uint8

// SASL outcome codes.
const (
	SASLCodeOK      SASLCode = 0
	SASLCodeAuth    SASLCode = 1
	SASLCodeSys     SASLCode = 2
	SASLCodeSysPerm SASLCode = 3
	SASLCodeSysTemp SASLCode = 4
)

// SASLMechanisms (0x40) lists the mechanisms the server offers.
type SASLMechanisms struct {
	Mechanisms []Symbol
}

func (*SASLMechanisms) descriptor() uint64 { return codeSASLMechanisms }

func (m *SASLMechanisms) fields() []any {
	// The field is mandatory, so a single mechanism is still sent; an
	// array keeps it unambiguous.
	return []any{m.Mechanisms}
}

func (m *SASLMechanisms) decodeFields(c *composite) {
	c.mandatory(0)
	*m = SASLMechanisms{Mechanisms: c.symbols(0)}
}

// SASLInit (0x41) selects a mechanism and carries its initial response.
type SASLInit struct {
	Mechanism       Symbol
	InitialResponse []byte
	Hostname        string
}

func (*SASLInit) descriptor() uint64 { return codeSASLInit }

func (i *SASLInit) fields() []any {
	return []any{i.Mechanism, nilIfEmptyBytes(i.InitialResponse), nilIfEmpty(i.Hostname)}
}

func (i *SASLInit) decodeFields(c *composite) {
	c.mandatory(0)
	*i = SASLInit{Mechanism: c.symbol(0), InitialResponse: c.binary(1), Hostname: c.string(2)}
}

// SASLChallenge (0x42) carries a server challenge.
type SASLChallenge struct {
	Challenge []byte
}

func (*SASLChallenge) descriptor() uint64 { return codeSASLChallenge }

func (ch *SASLChallenge) fields() []any {
	if ch.Challenge == nil {
		return []any{[]byte{}}
	}
	return []any{ch.Challenge}
}

func (ch *SASLChallenge) decodeFields(c *composite) {
	c.mandatory(0)
	*ch = SASLChallenge{Challenge: c.binary(0)}
}

// SASLResponse (0x43) carries a client response to a challenge.
type SASLResponse struct {
	Response []byte
}

func (*SASLResponse) descriptor() uint64 { return codeSASLResponse }

func (r *SASLResponse) fields() []any {
	if r.Response == nil {
		return []any{[]byte{}}
	}
	return []any{r.Response}
}

func (r *SASLResponse) decodeFields(c *composite) {
	c.mandatory(0)
	*r = SASLResponse{Response: c.binary(0)}
}

// SASLOutcome (0x44) ends the SASL exchange.
type SASLOutcome struct {
	Code           SASLCode
	AdditionalData []byte
}

func (*SASLOutcome) descriptor() uint64 { return codeSASLOutcome }

func (o *SASLOutcome) fields() []any {
	return []any{uint8(o.Code), nilIfEmptyBytes(o.AdditionalData)}
}

func (o *SASLOutcome) decodeFields(c *composite) {
	c.mandatory(0)
	*o = SASLOutcome{Code: SASLCode(c.uint8(0, 0)), AdditionalData: c.binary(1)}
}

// sasl marks the bodies that travel in SASL frames.
func (*SASLMechanisms) sasl() {}
func (*SASLInit) sasl()       {}
func (*SASLChallenge) sasl()  {}
func (*SASLResponse) sasl()   {}
func (*SASLOutcome) sasl()    {}
