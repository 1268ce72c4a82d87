package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// checkMemberNames enforces what encoding/json lets pass: it rejects a
// JSON object with a member name given twice (encoding/json keeps the last
// one) and, where the object decodes into a struct, a member name that is
// not exactly one of the struct's JSON names (encoding/json matches names
// case-insensitively and with Unicode case folding, so "FLAGGED" or
// "\u017fource" would set flagged or source). A policy gate that reads the
// body with another parser must see the request the registry applies.
//
// body must already be known to be valid JSON; t is the type it decodes
// into. The error is an invalid_argument naming the member by its path.
func checkMemberNames(body []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	return walkValue(dec, t, "")
}

// walkValue reads one JSON value from dec. t is the Go type it decodes
// into, nil where the shape is free (any, json.RawMessage, a type with its
// own UnmarshalJSON): there only duplicates are checked.
func walkValue(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonError(err)
	}
	t = decodeTarget(t)
	switch tok {
	case json.Delim('{'):
		return walkObject(dec, t, path)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkValue(dec, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ]
		return err
	}
	return nil // a scalar
}

func walkObject(dec *json.Decoder, t reflect.Type, path string) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = jsonFields(t)
		case reflect.Map:
			elem = t.Elem()
		}
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return jsonError(err)
		}
		name, _ := tok.(string)
		member := joinPath(path, name)
		if seen[name] {
			return &registry.Error{
				Code:    registry.CodeInvalidArgument,
				Field:   member,
				Rule:    "duplicate_field",
				Message: fmt.Sprintf("member %q appears more than once; send each member once", member),
			}
		}
		seen[name] = true
		vt := elem
		if fields != nil {
			ft, ok := fields[name]
			if !ok {
				return unknownMember(member, name, fields)
			}
			vt = ft
		}
		if err := walkValue(dec, vt, member); err != nil {
			return err
		}
	}
	_, err := dec.Token() // }
	return err
}

// unknownMember is the error for a name that is not exactly a field's:
// if it differs only in case, say which name was meant.
func unknownMember(member, name string, fields map[string]reflect.Type) error {
	for f := range fields {
		if strings.EqualFold(f, name) {
			return &registry.Error{
				Code:    registry.CodeInvalidArgument,
				Field:   member,
				Rule:    "field_name_case",
				Message: fmt.Sprintf("unknown field %q: member names are case-sensitive; did you mean %q?", member, f),
			}
		}
	}
	return &registry.Error{
		Code:    registry.CodeInvalidArgument,
		Field:   member,
		Rule:    "unknown_field",
		Message: fmt.Sprintf("unknown field %q", member),
	}
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

var (
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
)

// decodeTarget is the type encoding/json fills for a value of type t:
// pointers are followed; nil when the shape is not the struct's business.
func decodeTarget(t reflect.Type) reflect.Type {
	for t != nil {
		if t == rawMessageType || t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
			return nil
		}
		if t.Kind() != reflect.Pointer {
			break
		}
		t = t.Elem()
	}
	if t != nil && t.Kind() == reflect.Interface {
		return nil
	}
	return t
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// jsonFields lists the JSON member names a struct decodes, following
// encoding/json's rules: the tag's name or the Go name, "-" skipped,
// unexported fields skipped, untagged embedded structs promoted, and a
// shallower field hiding a deeper one of the same name.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	out := map[string]reflect.Type{}
	depth := map[string]int{}
	var walk func(t reflect.Type, d int)
	walk = func(t reflect.Type, d int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			ft := sf.Type
			if sf.Anonymous && name == "" {
				et := ft
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					walk(et, d+1)
					continue
				}
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" || !validTagName(name) {
				name = sf.Name
			}
			if prev, ok := depth[name]; ok && prev <= d {
				continue
			}
			out[name], depth[name] = ft, d
		}
	}
	walk(t, 0)
	fieldCache.Store(t, out)
	return out
}

// validTagName mirrors encoding/json's isValidTag closely enough for the
// registry's wire types (letters, digits, _ and a few punctuation marks).
func validTagName(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c > 0x7f:
		default:
			return false
		}
	}
	return true
}
