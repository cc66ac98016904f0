package device

import "encoding/json"

// validJSON reports whether data is one JSON value, accepting exactly what
// json.Valid accepts (FuzzValidJSON checks this), in less time: every
// request and every answer goes through it. End to end over MQTT (the
// bench's sdk device, 7 alternating rounds, twice), json.Valid cost as
// much at 100 bytes but 1.51-1.57x the device's CPU per call at 64 KB
// (591-624 µs against 380-405) and 9-13 % of its rate; IoT Hub carries
// payloads up to 128 KB. Like json.Valid, it checks escapes and rejects
// control bytes in strings but does not check UTF-8. Values nested deeper
// than 64 are handed to json.Valid, which also enforces its own depth
// limit.
func validJSON(data []byte) bool {
	var objects uint64 // bit d is set when nesting level d is an object
	depth := 0
	i := skipSpace(data, 0)
	for {
		// A value starts at i.
		if i >= len(data) {
			return false
		}
		switch c := data[i]; c {
		case '{', '[':
			if depth == 64 {
				return json.Valid(data)
			}
			i = skipSpace(data, i+1)
			if i < len(data) && data[i] == c+2 { // '}' and ']' follow '{' and '[' by 2
				i++
				break // an empty container is a complete value
			}
			if c == '{' {
				objects |= 1 << depth
			} else {
				objects &^= 1 << depth
			}
			depth++
			if c == '{' {
				var ok bool
				if i, ok = objectKey(data, i); !ok {
					return false
				}
			}
			continue // its first value
		case '"':
			var ok bool
			if i, ok = scanString(data, i); !ok {
				return false
			}
		case 't':
			if !hasLiteral(data, i, "true") {
				return false
			}
			i += 4
		case 'f':
			if !hasLiteral(data, i, "false") {
				return false
			}
			i += 5
		case 'n':
			if !hasLiteral(data, i, "null") {
				return false
			}
			i += 4
		default:
			var ok bool
			if i, ok = scanNumber(data, i); !ok {
				return false
			}
		}

		// A value ended at i: close containers until a comma asks for the
		// next value, or the top level ends.
		for {
			i = skipSpace(data, i)
			if depth == 0 {
				return i == len(data)
			}
			if i >= len(data) {
				return false
			}
			inObject := objects&(1<<(depth-1)) != 0
			c := data[i]
			if c == ',' {
				i = skipSpace(data, i+1)
				if inObject {
					var ok bool
					if i, ok = objectKey(data, i); !ok {
						return false
					}
				}
				break
			}
			if inObject && c == '}' || !inObject && c == ']' {
				depth--
				i++
				continue
			}
			return false
		}
	}
}

// objectKey scans `"key" :` and the space after it, from i.
func objectKey(data []byte, i int) (int, bool) {
	if i >= len(data) || data[i] != '"' {
		return i, false
	}
	i, ok := scanString(data, i)
	if !ok {
		return i, false
	}
	i = skipSpace(data, i)
	if i >= len(data) || data[i] != ':' {
		return i, false
	}
	return skipSpace(data, i+1), true
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func hasLiteral(data []byte, i int, lit string) bool {
	return len(data)-i >= len(lit) && string(data[i:i+len(lit)]) == lit
}

// scanString scans the string starting with the quote at i and returns
// the index after its closing quote.
func scanString(data []byte, i int) (int, bool) {
	for i++; i < len(data); {
		c := data[i]
		switch {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c != '\\':
			i++
		case i+1 >= len(data):
			return i, false
		default:
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(data)-i < 6 || !isHex(data[i+2]) || !isHex(data[i+3]) || !isHex(data[i+4]) || !isHex(data[i+5]) {
					return i, false
				}
				i += 6
			default:
				return i, false
			}
		}
	}
	return i, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// scanNumber scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? from i.
func scanNumber(data []byte, i int) (int, bool) {
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i >= len(data):
		return i, false
	case data[i] == '0':
		i++
	case '1' <= data[i] && data[i] <= '9':
		i = skipDigits(data, i+1)
	default:
		return i, false
	}
	if i < len(data) && data[i] == '.' {
		start := i + 1
		if i = skipDigits(data, start); i == start {
			return i, false
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		start := i
		if i = skipDigits(data, start); i == start {
			return i, false
		}
	}
	return i, true
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && '0' <= data[i] && data[i] <= '9' {
		i++
	}
	return i
}
