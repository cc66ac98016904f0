package localhub

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Evaluation of a parsed condition against one JSON document (a twin or a
// device job as the APIs return them, decoded with json.Number).
//
// As in IoT Hub's language, a condition is true, false or undefined: a
// property the document does not have is undefined, and so is a
// comparison of values of different types or of objects ("comparisons are
// supported only between primitive types", iot-hub-devguide-query-language).
// NOT undefined stays undefined, and only items whose condition is true are
// selected. Property names are matched exactly first, then ignoring case,
// as IoT Hub matches them (its own staff write IS_DEFINED(DeviceId) for
// deviceId, azure-iot-sdk-csharp issue #40).

// tri is a three-valued truth.
type tri int8

const (
	undefinedTri tri = iota
	falseTri
	trueTri
)

func triOf(b bool) tri {
	if b {
		return trueTri
	}
	return falseTri
}

// condition is a parsed WHERE condition.
type condition interface {
	eval(doc map[string]any, src querySource) tri
}

// operand is a parsed value: a path, a literal or IS_DEFINED(path). ok is
// false when the value is undefined.
type operand interface {
	value(doc map[string]any, src querySource) (v any, ok bool)
}

type orCond struct{ left, right condition }

func (c orCond) eval(doc map[string]any, src querySource) tri {
	l, r := c.left.eval(doc, src), c.right.eval(doc, src)
	switch {
	case l == trueTri || r == trueTri:
		return trueTri
	case l == falseTri && r == falseTri:
		return falseTri
	}
	return undefinedTri
}

type andCond struct{ left, right condition }

func (c andCond) eval(doc map[string]any, src querySource) tri {
	l, r := c.left.eval(doc, src), c.right.eval(doc, src)
	switch {
	case l == falseTri || r == falseTri:
		return falseTri
	case l == trueTri && r == trueTri:
		return trueTri
	}
	return undefinedTri
}

type notCond struct{ inner condition }

func (c notCond) eval(doc map[string]any, src querySource) tri {
	switch c.inner.eval(doc, src) {
	case trueTri:
		return falseTri
	case falseTri:
		return trueTri
	}
	return undefinedTri
}

// truthCond is an operand used as a condition: true when it is the boolean
// true, false for any other defined value.
type truthCond struct{ operand operand }

func (c truthCond) eval(doc map[string]any, src querySource) tri {
	v, ok := c.operand.value(doc, src)
	if !ok {
		return undefinedTri
	}
	b, isBool := v.(bool)
	return triOf(isBool && b)
}

type cmpCond struct {
	op          string
	left, right operand
}

func (c cmpCond) eval(doc map[string]any, src querySource) tri {
	l, lok := c.left.value(doc, src)
	r, rok := c.right.value(doc, src)
	if !lok || !rok {
		return undefinedTri
	}
	order, comparable := compareValues(l, r)
	if !comparable {
		return undefinedTri
	}
	switch c.op {
	case "=":
		return triOf(order == 0)
	case "!=":
		return triOf(order != 0)
	}
	if !ordered(l) {
		return undefinedTri // booleans and null have no order
	}
	switch c.op {
	case "<":
		return triOf(order < 0)
	case "<=":
		return triOf(order <= 0)
	case ">":
		return triOf(order > 0)
	}
	return triOf(order >= 0) // ">="
}

type inCond struct {
	operand operand
	values  []any
	negate  bool
}

func (c inCond) eval(doc map[string]any, src querySource) tri {
	v, ok := c.operand.value(doc, src)
	if !ok {
		return undefinedTri
	}
	found := false
	for _, candidate := range c.values {
		if order, comparable := compareValues(v, candidate); comparable && order == 0 {
			found = true
			break
		}
	}
	return triOf(found != c.negate)
}

type literalOperand struct{ v any }

func (o literalOperand) value(map[string]any, querySource) (any, bool) { return o.v, true }

type isDefinedOperand struct{ path pathOperand }

func (o isDefinedOperand) value(doc map[string]any, src querySource) (any, bool) {
	_, ok := o.path.value(doc, src)
	return ok, true
}

// pathOperand is a property path such as tags.location.floor.
type pathOperand []string

func (o pathOperand) value(doc map[string]any, src querySource) (any, bool) {
	path := []string(o)
	// A path may start with the source's own name: devices.jobs.jobId.
	if prefix := src.prefix(); len(path) > len(prefix) {
		match := true
		for i, p := range prefix {
			if !strings.EqualFold(path[i], p) {
				match = false
				break
			}
		}
		if match {
			path = path[len(prefix):]
		}
	}
	var cur any = doc
	for _, name := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = lookupProperty(obj, name); !ok {
			return nil, false
		}
	}
	return normalizeValue(cur), true
}

// lookupProperty finds name in obj, exactly or else ignoring case.
func lookupProperty(obj map[string]any, name string) (any, bool) {
	if v, ok := obj[name]; ok {
		return v, true
	}
	for k, v := range obj {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

// normalizeValue turns a json.Number into a float64, so that documents and
// literals compare alike.
func normalizeValue(v any) any {
	if n, ok := v.(json.Number); ok {
		if f, err := n.Float64(); err == nil {
			return f
		}
		return nil
	}
	return v
}

// ordered reports whether v has an order: numbers and strings do.
func ordered(v any) bool {
	switch v.(type) {
	case float64, string:
		return true
	}
	return false
}

// compareValues orders two primitive values of the same type; comparable
// is false for values of different types and for objects and arrays.
func compareValues(a, b any) (order int, comparable bool) {
	switch a := a.(type) {
	case float64:
		b, ok := b.(float64)
		switch {
		case !ok:
			return 0, false
		case a < b:
			return -1, true
		case a > b:
			return 1, true
		}
		return 0, true
	case string:
		b, ok := b.(string)
		if !ok {
			return 0, false
		}
		return strings.Compare(a, b), true
	case bool:
		b, ok := b.(bool)
		if !ok {
			return 0, false
		}
		if a == b {
			return 0, true
		}
		return 1, true
	case nil:
		if b == nil {
			return 0, true
		}
	}
	return 0, false
}

// matches reports whether doc satisfies q's condition.
func (q *parsedQuery) matches(doc map[string]any) bool {
	return q.where == nil || q.where.eval(doc, q.source) == trueTri
}

// queryDocument turns v (a twin or a device job) into the generic form
// conditions evaluate.
func queryDocument(v any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var doc map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if d.Decode(&doc) != nil {
		return nil
	}
	return doc
}
