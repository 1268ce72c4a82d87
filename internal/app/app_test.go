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
