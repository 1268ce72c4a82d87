package sqlstore

import (
	"errors"
	"reflect"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// FuzzDecodeCursor: a page token is client input. decodeCursor never
// panics; it refuses with invalid_argument on page_token, including a
// token of another list; what it accepts belongs to the list asked for
// and encodes back to a token that decodes to the same cursor. Seeds in
// testdata/fuzz/FuzzDecodeCursor.
func FuzzDecodeCursor(f *testing.F) {
	v := 0.5
	for _, c := range []cursor{
		{List: "models", Name: "churn"},
		{List: "versions:churn", ID: 7},
		{List: "versions:churn:metrics.auc desc", ID: 3, Value: &v},
		{List: "events", ID: 1 << 62},
	} {
		f.Add(c.encode(), c.List)
		f.Add(c.encode(), "models")
	}
	for _, tok := range []string{"", "!", "e30", "eyJsIjoibW9kZWxzIn0", "eyJsIjoibW9kZWxzIiwidiI6MWU5OTl9", "bnVsbA", "W10", "eyJsIjoibW9kZWxzIiwiaSI6LTF9"} {
		f.Add(tok, "models")
	}
	f.Fuzz(func(t *testing.T, token, list string) {
		c, err := decodeCursor(token, list)
		if err != nil {
			var e *registry.Error
			if !errors.As(err, &e) || e.Code != registry.CodeInvalidArgument || e.Field != "page_token" {
				t.Fatalf("decodeCursor(%q): %#v is not invalid_argument on page_token", token, err)
			}
			return
		}
		if token == "" {
			if c != nil {
				t.Fatalf("empty token gave %+v", c)
			}
			return
		}
		if c == nil || c.List != list {
			t.Fatalf("decodeCursor(%q, %q) accepted a cursor of list %+v", token, list, c)
		}
		again, err := decodeCursor(c.encode(), list)
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("cursor %+v does not round-trip: %+v %v", c, again, err)
		}
	})
}
