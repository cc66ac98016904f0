package localhub

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The part of IoT Hub's query language ("IoT Hub query language for device
// and module twins, jobs, and message routing",
// iot-hub-devguide-query-language) that jobs need:
//
//	query     := SELECT '*' FROM source [WHERE condition]
//	source    := devices | devices.modules | devices.jobs
//	condition := condition OR condition | condition AND condition
//	           | NOT condition | '(' condition ')'
//	           | operand [op operand | IN list | NIN list]
//	op        := = | != | <> | < | > | <= | >=
//	operand   := path | literal | IS_DEFINED '(' path ')'
//	list      := '[' literal {',' literal} ']'
//	literal   := 'string' | "string" | number | 0xhex | true | false | null
//	path      := name {'.' name}
//
// Keywords are case-insensitive. String escapes are the documented \' \"
// \\ and \uXXXX. A job's queryCondition is a condition alone, or
// "FROM devices[.modules] WHERE condition" (IoT Hub accepts the latter:
// Azure/iotedge issue #2958). Projections, TOP, GROUP BY, aggregates and
// the routing functions are refused with a message that says so.

// QueryError is a query that does not parse: where (1-based line and
// column of the query text) and why.
type QueryError struct {
	Line, Column int
	Msg          string
}

// Error formats the problem as IoT Hub's parser reports positions, "Line
// 1:29 ..." (azure-iot-sdk-csharp issue #40).
func (e *QueryError) Error() string { return fmt.Sprintf("Line %d:%d %s", e.Line, e.Column, e.Msg) }

// querySource is the collection a query reads.
type querySource int

const (
	sourceDevices querySource = iota
	sourceModules
	sourceJobs
)

// prefix is the source's name, which may start a path ("devices.jobs.jobId").
func (s querySource) prefix() []string {
	switch s {
	case sourceModules:
		return []string{"devices", "modules"}
	case sourceJobs:
		return []string{"devices", "jobs"}
	}
	return []string{"devices"}
}

// parsedQuery is a parsed SELECT * query.
type parsedQuery struct {
	source querySource
	where  condition // nil: every item
}

// Limits the parser sets itself to bound its work; IoT Hub documents none.
const (
	// maxQueryDepth bounds nested parentheses and NOTs.
	maxQueryDepth = 32
	// maxQueryLength is about the query size IoT Hub takes (a maintainer's
	// measure in azure-iot-sdk-csharp issue #1680: "around 8200 Bytes").
	maxQueryLength = 8192
)

// parseQuery parses a full query.
func parseQuery(text string) (*parsedQuery, error) {
	p, err := newQueryParser(text)
	if err != nil {
		return nil, err
	}
	if err := p.expectKeyword("SELECT"); err != nil {
		return nil, err
	}
	if p.peek().kind == tokKeyword && p.peek().text == "TOP" {
		return nil, p.errorAt(p.peek(), "TOP is not supported by this hub; use the x-ms-max-item-count header to page")
	}
	if p.peek().kind != tokStar {
		return nil, p.errorAt(p.peek(), "only SELECT * is supported by this hub (no projections or aggregates)")
	}
	p.next()
	q := &parsedQuery{}
	if q.source, err = p.parseFrom(true); err != nil {
		return nil, err
	}
	if q.where, err = p.parseOptionalWhere(); err != nil {
		return nil, err
	}
	return q, nil
}

// parseCondition parses a job's queryCondition: a condition, or "FROM
// devices[.modules] WHERE condition".
func parseCondition(text string) (*parsedQuery, error) {
	p, err := newQueryParser(text)
	if err != nil {
		return nil, err
	}
	q := &parsedQuery{}
	if t := p.peek(); t.kind == tokKeyword && t.text == "FROM" {
		if q.source, err = p.parseFrom(false); err != nil {
			return nil, err
		}
		if t := p.peek(); t.kind != tokKeyword || t.text != "WHERE" {
			return nil, p.errorAt(t, "expected WHERE after the FROM clause, found "+t.describe())
		}
	}
	if t := p.peek(); t.kind == tokKeyword && t.text == "WHERE" {
		p.next()
	}
	if t := p.peek(); t.kind == tokEOF {
		return nil, p.errorAt(t, "the query condition is empty")
	}
	if q.where, err = p.parseOr(0); err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.errorAt(t, "unexpected "+t.describe()+" after the condition")
	}
	return q, nil
}

// queryParser is a recursive-descent parser over the query's tokens.
type queryParser struct {
	toks []token
	pos  int
}

func newQueryParser(text string) (*queryParser, error) {
	if len(text) > maxQueryLength {
		return nil, &QueryError{Line: 1, Column: 1, Msg: fmt.Sprintf("the query is %d bytes, more than the %d this hub takes", len(text), maxQueryLength)}
	}
	toks, err := lexQuery(text)
	if err != nil {
		return nil, err
	}
	return &queryParser{toks: toks}, nil
}

func (p *queryParser) peek() token { return p.toks[p.pos] }

func (p *queryParser) next() token {
	t := p.toks[p.pos]
	if t.kind != tokEOF {
		p.pos++
	}
	return t
}

func (p *queryParser) errorAt(t token, msg string) *QueryError {
	return &QueryError{Line: t.line, Column: t.col, Msg: msg}
}

func (p *queryParser) expectKeyword(kw string) error {
	t := p.next()
	if t.kind != tokKeyword || t.text != kw {
		return p.errorAt(t, "expected "+kw+", found "+t.describe())
	}
	return nil
}

// parseFrom parses "FROM source"; jobs is whether devices.jobs is allowed.
func (p *queryParser) parseFrom(jobs bool) (querySource, error) {
	if err := p.expectKeyword("FROM"); err != nil {
		return 0, err
	}
	t := p.next()
	if t.kind != tokIdent || !strings.EqualFold(t.text, "devices") {
		return 0, p.errorAt(t, "expected devices, devices.modules or devices.jobs after FROM, found "+t.describe())
	}
	if p.peek().kind != tokDot {
		return sourceDevices, nil
	}
	p.next()
	sub := p.next()
	switch {
	case sub.kind == tokIdent && strings.EqualFold(sub.text, "modules"):
		return sourceModules, nil
	case sub.kind == tokIdent && strings.EqualFold(sub.text, "jobs") && jobs:
		return sourceJobs, nil
	}
	return 0, p.errorAt(sub, "expected devices, devices.modules or devices.jobs after FROM, found devices."+sub.describe())
}

// parseOptionalWhere parses "[WHERE condition]" and the end of the query.
func (p *queryParser) parseOptionalWhere() (condition, error) {
	t := p.next()
	switch {
	case t.kind == tokEOF:
		return nil, nil
	case t.kind == tokKeyword && t.text == "WHERE":
	case t.kind == tokKeyword && (t.text == "GROUP" || t.text == "ORDER"):
		return nil, p.errorAt(t, t.text+" BY is not supported by this hub")
	default:
		return nil, p.errorAt(t, "expected WHERE or the end of the query, found "+t.describe())
	}
	c, err := p.parseOr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.errorAt(t, "unexpected "+t.describe()+" after the condition")
	}
	return c, nil
}

func (p *queryParser) parseOr(depth int) (condition, error) {
	return p.parseChain(depth, "OR", p.parseAnd, func(l, r condition) condition { return orCond{l, r} })
}

func (p *queryParser) parseAnd(depth int) (condition, error) {
	return p.parseChain(depth, "AND", p.parseNot, func(l, r condition) condition { return andCond{l, r} })
}

// parseChain parses operands joined by the keyword op, left to right.
func (p *queryParser) parseChain(depth int, op string, operand func(int) (condition, error), join func(l, r condition) condition) (condition, error) {
	left, err := operand(depth)
	if err != nil {
		return nil, err
	}
	for p.peek().kind == tokKeyword && p.peek().text == op {
		p.next()
		right, err := operand(depth)
		if err != nil {
			return nil, err
		}
		left = join(left, right)
	}
	return left, nil
}

func (p *queryParser) parseNot(depth int) (condition, error) {
	t := p.peek()
	if depth >= maxQueryDepth {
		return nil, p.errorAt(t, fmt.Sprintf("the condition nests more than %d levels deep", maxQueryDepth))
	}
	switch {
	case t.kind == tokKeyword && t.text == "NOT":
		p.next()
		c, err := p.parseNot(depth + 1)
		if err != nil {
			return nil, err
		}
		return notCond{c}, nil
	case t.kind == tokLParen:
		p.next()
		c, err := p.parseOr(depth + 1)
		if err != nil {
			return nil, err
		}
		if r := p.next(); r.kind != tokRParen {
			return nil, p.errorAt(r, "expected ) to close the ( at "+t.where()+", found "+r.describe())
		}
		return c, nil
	}
	return p.parsePredicate()
}

// parsePredicate parses a comparison, an IN or NIN test, or an operand on
// its own (true when it is the boolean true).
func (p *queryParser) parsePredicate() (condition, error) {
	left, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	switch {
	case t.kind == tokOp:
		p.next()
		right, err := p.parseOperand()
		if err != nil {
			return nil, err
		}
		return cmpCond{op: t.text, left: left, right: right}, nil
	case t.kind == tokKeyword && (t.text == "IN" || t.text == "NIN"):
		p.next()
		list, err := p.parseList()
		if err != nil {
			return nil, err
		}
		return inCond{operand: left, values: list, negate: t.text == "NIN"}, nil
	}
	return truthCond{left}, nil
}

func (p *queryParser) parseOperand() (operand, error) {
	t := p.peek()
	switch t.kind {
	case tokString, tokNumber:
		p.next()
		return literalOperand{t.value}, nil
	case tokKeyword:
		switch t.text {
		case "TRUE", "FALSE", "NULL":
			p.next()
			return literalOperand{t.value}, nil
		case "IS_DEFINED":
			p.next()
			return p.parseIsDefined(t)
		}
	case tokIdent:
		if p.toks[p.pos+1].kind == tokLParen {
			return nil, p.errorAt(t, fmt.Sprintf("the function %s is not supported by this hub; IS_DEFINED is", t.text))
		}
		return p.parsePath()
	}
	return nil, p.errorAt(t, "expected a property, a value or IS_DEFINED(...), found "+t.describe())
}

func (p *queryParser) parseIsDefined(fn token) (operand, error) {
	if t := p.next(); t.kind != tokLParen {
		return nil, p.errorAt(t, "expected ( after IS_DEFINED, found "+t.describe())
	}
	t := p.peek()
	if t.kind != tokIdent {
		return nil, p.errorAt(t, "expected a property in IS_DEFINED(...), found "+t.describe())
	}
	path, err := p.parsePath()
	if err != nil {
		return nil, err
	}
	if t := p.next(); t.kind != tokRParen {
		return nil, p.errorAt(t, "expected ) to close IS_DEFINED( at "+fn.where()+", found "+t.describe())
	}
	return isDefinedOperand{path.(pathOperand)}, nil
}

func (p *queryParser) parsePath() (operand, error) {
	t := p.next()
	path := pathOperand{t.text}
	for p.peek().kind == tokDot {
		p.next()
		name := p.next()
		if name.kind != tokIdent && name.kind != tokKeyword {
			return nil, p.errorAt(name, "expected a property name after '.', found "+name.describe())
		}
		path = append(path, name.raw)
	}
	return path, nil
}

func (p *queryParser) parseList() ([]any, error) {
	open := p.next()
	if open.kind != tokLBracket {
		return nil, p.errorAt(open, "expected [ to start the list, found "+open.describe())
	}
	var values []any
	for {
		t := p.next()
		switch {
		case t.kind == tokString || t.kind == tokNumber:
		case t.kind == tokKeyword && (t.text == "TRUE" || t.text == "FALSE" || t.text == "NULL"):
		default:
			return nil, p.errorAt(t, "expected a value in the list, found "+t.describe())
		}
		values = append(values, t.value)
		sep := p.next()
		switch sep.kind {
		case tokComma:
			continue
		case tokRBracket:
			return values, nil
		}
		return nil, p.errorAt(sep, "expected , or ] in the list started at "+open.where()+", found "+sep.describe())
	}
}

// tokenKind classifies a token.
type tokenKind int

const (
	tokEOF tokenKind = iota
	tokIdent
	tokKeyword
	tokString
	tokNumber
	tokOp
	tokStar
	tokDot
	tokComma
	tokLParen
	tokRParen
	tokLBracket
	tokRBracket
)

// token is one lexeme with its position (1-based line and column).
type token struct {
	kind      tokenKind
	text      string // keywords upper-cased; operators normalized ("<>" is "!=")
	raw       string // as written
	value     any    // literals: string, float64, bool or nil
	line, col int
}

// queryKeywords are the reserved words, matched case-insensitively.
var queryKeywords = map[string]bool{
	"SELECT": true, "FROM": true, "WHERE": true, "AND": true, "OR": true, "NOT": true,
	"IN": true, "NIN": true, "TRUE": true, "FALSE": true, "NULL": true, "IS_DEFINED": true,
	"TOP": true, "GROUP": true, "ORDER": true,
}

func (t token) where() string { return fmt.Sprintf("%d:%d", t.line, t.col) }

// describe names a token for error messages.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "the end of the query"
	case tokString:
		return "the string " + clip(t.raw)
	case tokNumber:
		return "the number " + clip(t.raw)
	}
	return "'" + clip(t.raw) + "'"
}

// lexQuery splits a query into tokens, ending with tokEOF.
func lexQuery(s string) ([]token, error) {
	l := &queryLexer{s: s, line: 1, col: 1}
	var toks []token
	for {
		t, err := l.next()
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		if t.kind == tokEOF {
			return toks, nil
		}
	}
}

// queryLexer reads tokens from s, tracking the position.
type queryLexer struct {
	s         string
	i         int
	line, col int
}

func (l *queryLexer) errorHere(msg string) *QueryError {
	return &QueryError{Line: l.line, Column: l.col, Msg: msg}
}

// advance moves past n bytes of s, counting lines and columns in runes.
func (l *queryLexer) advance(n int) {
	for end := l.i + n; l.i < end; {
		r, size := utf8.DecodeRuneInString(l.s[l.i:])
		l.i += size
		if r == '\n' {
			l.line, l.col = l.line+1, 1
		} else {
			l.col++
		}
	}
}

func (l *queryLexer) next() (token, error) {
	for l.i < len(l.s) && strings.IndexByte(" \t\r\n", l.s[l.i]) >= 0 {
		l.advance(1)
	}
	t := token{line: l.line, col: l.col}
	if l.i >= len(l.s) {
		t.kind = tokEOF
		return t, nil
	}
	start := l.i
	c := l.s[l.i]
	switch {
	case c == '\'' || c == '"':
		v, n, err := l.readString()
		if err != nil {
			return token{}, err
		}
		t.kind, t.value = tokString, v
		l.advance(n)
	case c >= '0' && c <= '9' || c == '-' && l.i+1 < len(l.s) && (l.s[l.i+1] >= '0' && l.s[l.i+1] <= '9' || l.s[l.i+1] == '.') || c == '.' && l.i+1 < len(l.s) && l.s[l.i+1] >= '0' && l.s[l.i+1] <= '9':
		v, n, err := l.readNumber()
		if err != nil {
			return token{}, err
		}
		t.kind, t.value = tokNumber, v
		l.advance(n)
	case isNameStart(c):
		n := 1
		for l.i+n < len(l.s) && isNamePart(l.s[l.i+n]) {
			n++
		}
		word := l.s[l.i : l.i+n]
		upper := strings.ToUpper(word)
		t.kind, t.text = tokIdent, word
		if queryKeywords[upper] {
			t.kind, t.text = tokKeyword, upper
			switch upper {
			case "TRUE":
				t.value = true
			case "FALSE":
				t.value = false
			}
		}
		l.advance(n)
	default:
		kind, op, n := punctuation(l.s[l.i:])
		if n == 0 {
			r, _ := utf8.DecodeRuneInString(l.s[l.i:])
			return token{}, l.errorHere(fmt.Sprintf("unexpected character %q", r))
		}
		t.kind, t.text = kind, op
		l.advance(n)
	}
	t.raw = l.s[start:l.i]
	if t.text == "" {
		t.text = t.raw
	}
	return t, nil
}

// punctuation reads an operator or a delimiter at the start of s.
func punctuation(s string) (tokenKind, string, int) {
	for _, op := range []string{"<=", ">=", "!=", "<>"} {
		if strings.HasPrefix(s, op) {
			if op == "<>" {
				return tokOp, "!=", 2
			}
			return tokOp, op, 2
		}
	}
	switch s[0] {
	case '=', '<', '>':
		return tokOp, s[:1], 1
	case '*':
		return tokStar, "*", 1
	case '.':
		return tokDot, ".", 1
	case ',':
		return tokComma, ",", 1
	case '(':
		return tokLParen, "(", 1
	case ')':
		return tokRParen, ")", 1
	case '[':
		return tokLBracket, "[", 1
	case ']':
		return tokRBracket, "]", 1
	}
	return 0, "", 0
}

func isNameStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '$'
}

func isNamePart(c byte) bool { return isNameStart(c) || c >= '0' && c <= '9' }

// readString reads a quoted string at l.i and returns its value and length
// in bytes.
func (l *queryLexer) readString() (string, int, error) {
	quote := l.s[l.i]
	var b strings.Builder
	for j := l.i + 1; j < len(l.s); {
		c := l.s[j]
		switch {
		case c == quote:
			return b.String(), j + 1 - l.i, nil
		case c == '\\':
			if j+1 >= len(l.s) {
				return "", 0, l.errorHere("the string is not closed")
			}
			switch e := l.s[j+1]; e {
			case '\'', '"', '\\':
				b.WriteByte(e)
				j += 2
			case 'u':
				if j+6 > len(l.s) {
					return "", 0, l.errorHere(`a \u escape needs 4 hexadecimal digits`)
				}
				n, err := strconv.ParseUint(l.s[j+2:j+6], 16, 16)
				if err != nil {
					return "", 0, l.errorHere(`a \u escape needs 4 hexadecimal digits`)
				}
				b.WriteRune(rune(n))
				j += 6
			default:
				return "", 0, l.errorHere(fmt.Sprintf(`the escape \%c is not one of \' \" \\ \uXXXX`, e))
			}
		default:
			b.WriteByte(c)
			j++
		}
	}
	return "", 0, l.errorHere("the string is not closed")
}

// readNumber reads a decimal or 0x hexadecimal number at l.i.
func (l *queryLexer) readNumber() (float64, int, error) {
	s := l.s[l.i:]
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		n := 2
		for n < len(s) && strings.IndexByte("0123456789abcdefABCDEF", s[n]) >= 0 {
			n++
		}
		v, err := strconv.ParseUint(s[2:n], 16, 64)
		if err != nil {
			return 0, 0, l.errorHere("invalid hexadecimal number " + clip(s[:n]))
		}
		return float64(v), n, nil
	}
	n := 0
	if s[0] == '-' {
		n++
	}
	digits := func() {
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
	}
	digits()
	if n < len(s) && s[n] == '.' {
		n++
		digits()
	}
	if n < len(s) && (s[n] == 'e' || s[n] == 'E') {
		n++
		if n < len(s) && (s[n] == '+' || s[n] == '-') {
			n++
		}
		digits()
	}
	if n < len(s) && isNamePart(s[n]) {
		return 0, 0, l.errorHere("invalid number " + clip(s[:n+1]))
	}
	v, err := strconv.ParseFloat(s[:n], 64)
	if err != nil {
		return 0, 0, l.errorHere("invalid number " + clip(s[:n]))
	}
	return v, n, nil
}
