package app

import "testing"

func TestCheckListen(t *testing.T) {
	tests := []struct {
		listen   string
		insecure bool
		ok       bool
	}{
		{"0.0.0.0:8080", false, true},
		{"127.0.0.1:8080", true, true},
		{"[::1]:8080", true, true},
		{"localhost:8080", true, true},
		{"0.0.0.0:8080", true, false},
		{"10.1.2.3:8080", true, false},
		{":8080", true, false},
	}
	for _, tt := range tests {
		err := CheckListen(tt.listen, tt.insecure)
		if (err == nil) != tt.ok {
			t.Errorf("CheckListen(%q, %v) = %v, want ok=%v", tt.listen, tt.insecure, err, tt.ok)
		}
	}
}

func TestRedactDSN(t *testing.T) {
	tests := map[string]string{
		"postgres://u:secret@h:5432/db": "postgres://u:xxxxx@h:5432/db",
		"postgres://u@h/db":             "postgres://u@h/db",
		"sqlite://./mlregistry.db":      "sqlite://./mlregistry.db",
		"postgres://u:p@ss:w@h/db?x=1":  "postgres://u:xxxxx@h/db?x=1",
	}
	for in, want := range tests {
		if got := redactDSN(in); got != want {
			t.Errorf("redactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}
