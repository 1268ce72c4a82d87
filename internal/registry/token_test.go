package registry

import "testing"

func TestBearerSecret(t *testing.T) {
	for _, c := range []struct {
		header, secret string
		ok             bool
	}{
		{"Bearer mlr_abc", "mlr_abc", true},
		{"bearer mlr_abc", "mlr_abc", true},
		{"Bearer  mlr_abc ", "mlr_abc", true},
		{"Bearer \tmlr_abc", "mlr_abc", true},
		{"Bearer ", "", true},
		{"Bearer", "", false},
		{"Bearer\tmlr_abc", "", false},
		{"Basic mlr_abc", "", false},
		{"", "", false},
	} {
		secret, ok := BearerSecret(c.header)
		if secret != c.secret || ok != c.ok {
			t.Errorf("BearerSecret(%q) = %q, %v; want %q, %v", c.header, secret, ok, c.secret, c.ok)
		}
	}
}
