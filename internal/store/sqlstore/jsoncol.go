package sqlstore

import (
	"strconv"
	"unicode/utf8"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// The version columns parameters, tags, metrics, lineage and signature
// hold JSON the store wrote with encoding/json. Reading them back through
// encoding/json's reflection cost a read of a version as much as the query
// itself, so the decoders below read the shapes the store writes directly:
// objects of plain strings (no escapes, valid UTF-8) or JSON numbers, and
// the two small structs. Anything else (an escape, null, an unknown key, a
// number an integer field cannot hold, malformed input) goes to
// encoding/json, which then decides: the result is always what
// encoding/json would give (FuzzColumnDecoders checks it).

// jscan reads JSON from s at i.
type jscan struct {
	s string
	i int
}

func (p *jscan) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// lit skips white space and then c.
func (p *jscan) lit(c byte) bool {
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// peek skips white space and reports whether c comes next.
func (p *jscan) peek(c byte) bool {
	p.ws()
	return p.i < len(p.s) && p.s[p.i] == c
}

// end reports whether only white space is left.
func (p *jscan) end() bool {
	p.ws()
	return p.i == len(p.s)
}

// str reads a string without escapes or control characters whose bytes
// are valid UTF-8.
func (p *jscan) str() (string, bool) {
	if !p.lit('"') {
		return "", false
	}
	start := p.i
	ascii := true
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			out := p.s[start:p.i]
			p.i++
			if !ascii && !utf8.ValidString(out) {
				return "", false
			}
			return out, true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		p.i++
	}
	return "", false
}

// num reads a JSON number literal; integer limits it to -?(0|[1-9][0-9]*).
func (p *jscan) num(integer bool) (string, bool) {
	p.ws()
	start := p.i
	if p.i < len(p.s) && p.s[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.s) && p.s[p.i] == '0':
		p.i++
	case p.i < len(p.s) && p.s[p.i] >= '1' && p.s[p.i] <= '9':
		p.digits()
	default:
		return "", false
	}
	if !integer && p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if p.digits() == 0 {
			return "", false
		}
	}
	if !integer && p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if p.digits() == 0 {
			return "", false
		}
	}
	if p.i < len(p.s) {
		switch p.s[p.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
		default:
			return "", false
		}
	}
	return p.s[start:p.i], true
}

func (p *jscan) digits() int {
	n := 0
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
		n++
	}
	return n
}

// object reads {"key": value, ...}, calling member for each key with the
// scanner before the value.
func (p *jscan) object(member func(key string) bool) bool {
	if !p.lit('{') {
		return false
	}
	if p.lit('}') {
		return true
	}
	for {
		key, ok := p.str()
		if !ok || !p.lit(':') || !member(key) {
			return false
		}
		if p.lit('}') {
			return true
		}
		if !p.lit(',') {
			return false
		}
	}
}

// array reads [value, ...], calling elem for each.
func (p *jscan) array(elem func() bool) bool {
	if !p.lit('[') {
		return false
	}
	if p.lit(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if p.lit(']') {
			return true
		}
		if !p.lit(',') {
			return false
		}
	}
}

// fastStringMap decodes {"k": "v", ...}.
func fastStringMap(s string) (map[string]string, bool) {
	p := &jscan{s: s}
	m := map[string]string{}
	ok := p.object(func(key string) bool {
		v, ok := p.str()
		m[key] = v
		return ok
	})
	return m, ok && p.end()
}

// fastFloatMap decodes {"k": number, ...}.
func fastFloatMap(s string) (map[string]float64, bool) {
	p := &jscan{s: s}
	m := map[string]float64{}
	ok := p.object(func(key string) bool {
		lit, ok := p.num(false)
		if !ok {
			return false
		}
		f, err := strconv.ParseFloat(lit, 64)
		m[key] = f
		return err == nil
	})
	return m, ok && p.end()
}

// fastLineage decodes a registry.Lineage as the store writes it.
func fastLineage(s string) (*registry.Lineage, bool) {
	p := &jscan{s: s}
	l := &registry.Lineage{}
	seen := map[string]bool{}
	ok := p.object(func(key string) bool {
		if seen[key] {
			return false // a repeated key: encoding/json's business
		}
		seen[key] = true
		var dst *string
		switch key {
		case "run_id":
			dst = &l.RunID
		case "git_commit":
			dst = &l.GitCommit
		case "dataset":
			dst = &l.Dataset
		case "code_uri":
			dst = &l.CodeURI
		default:
			return false
		}
		v, ok := p.str()
		*dst = v
		return ok
	})
	return l, ok && p.end()
}

// fastSignature decodes a registry.Signature as the store writes it.
func fastSignature(s string) (*registry.Signature, bool) {
	p := &jscan{s: s}
	sig := &registry.Signature{}
	seen := map[string]bool{}
	ok := p.object(func(key string) bool {
		if seen[key] {
			return false
		}
		seen[key] = true
		var dst *[]registry.TensorSpec
		switch key {
		case "inputs":
			dst = &sig.Inputs
		case "outputs":
			dst = &sig.Outputs
		default:
			return false
		}
		if p.peek('n') {
			return false // null: encoding/json's business
		}
		specs := []registry.TensorSpec{}
		ok := p.array(func() bool {
			spec, ok := p.tensor()
			specs = append(specs, spec)
			return ok
		})
		*dst = specs
		return ok
	})
	return sig, ok && p.end()
}

func (p *jscan) tensor() (registry.TensorSpec, bool) {
	var t registry.TensorSpec
	seen := map[string]bool{}
	ok := p.object(func(key string) bool {
		if seen[key] {
			return false
		}
		seen[key] = true
		switch key {
		case "name", "dtype":
			v, ok := p.str()
			if key == "name" {
				t.Name = v
			} else {
				t.DType = v
			}
			return ok
		case "shape":
			if p.peek('n') {
				return false
			}
			shape := []int64{}
			ok := p.array(func() bool {
				lit, ok := p.num(true)
				if !ok {
					return false
				}
				n, err := strconv.ParseInt(lit, 10, 64)
				shape = append(shape, n)
				return err == nil
			})
			t.Shape = shape
			return ok
		}
		return false
	})
	return t, ok
}

// Column decoders: the fast path, else encoding/json.

func decodeStringMap(s string) (map[string]string, error) {
	if m, ok := fastStringMap(s); ok {
		return m, nil
	}
	return stringMap(s)
}

func decodeFloatMap(s string) (map[string]float64, error) {
	if m, ok := fastFloatMap(s); ok {
		return m, nil
	}
	m := map[string]float64{}
	if err := fromJSON(s, &m); err != nil {
		return nil, err
	}
	return nonNilFloats(m), nil
}

func decodeLineage(s string) (*registry.Lineage, error) {
	if l, ok := fastLineage(s); ok {
		return l, nil
	}
	l := &registry.Lineage{}
	return l, fromJSON(s, l)
}

func decodeSignature(s string) (*registry.Signature, error) {
	if sig, ok := fastSignature(s); ok {
		return sig, nil
	}
	sig := &registry.Signature{}
	return sig, fromJSON(s, sig)
}
