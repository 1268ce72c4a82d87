package registry

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

func TestValidateUpstreamURLRefusesWhatTheGatewayWouldNotUse(t *testing.T) {
	for _, c := range []struct {
		url, rule string // rule "" = accepted
	}{
		{"http://churn-v6:8080", ""},
		{"https://models.internal/v1", ""},
		{"http://127.0.0.1:9000", ""},
		{"http://[::1]:9000/v1", ""},
		{"http://svc:hunter2@churn:8080", "url"},
		{"http://svc@churn:8080", "url"},
		{"ftp://churn", "url"},
		{"file:///etc/passwd", "url"},
		{"http://169.254.169.254/latest/meta-data", "upstream_address"},
		{"http://[fe80::1]:80", "upstream_address"},
		{"http://0.0.0.0:22", "upstream_address"},
		{"http://[::]:22", "upstream_address"},
		{"http://[::ffff:169.254.169.254]", "upstream_address"},
		{"http://224.0.0.1", "upstream_address"},
		// Every spelling a dialler may read as a refused address.
		{"http://2852039166/", "upstream_address"},
		{"http://0xa9fea9fe/", "upstream_address"},
		{"http://0XA9FEA9FE/", "upstream_address"},
		{"http://0251.0376.0251.0376/", "upstream_address"},
		{"http://169.254.169.254./", "upstream_address"},
		{"http://169.254.43518/", "upstream_address"},
		{"http://0xa9.0xfe.0xa9.0xfe/", "upstream_address"},
		{"http://0/", "upstream_address"},
		{"http://0x0/", "upstream_address"},
		{"http://0.0.0.0./", "upstream_address"},
		{"http://[fe80::1%25eth0]:80/", "upstream_address"},
		{"http://[::ffff:a9fe:a9fe]/", "upstream_address"},
		// Usual addresses in unusual spellings are refused too: resolvers
		// disagree about them.
		{"http://2130706433:9000", "url"},
		{"http://0x7f.1:9000", "url"},
		{"http://127.0.0.1.:9000", "url"},
		{"http://017700000001:9000", "url"},
		// Hosts that end in a number but are no address.
		{"http://1.2.3.4.5/", "url"},
		{"http://256.1.1.1/", "url"},
		{"http://1.2.65536/", "url"},
		{"http://08.1.1.1/", "url"},
		{"http://models.v2.123/", "url"},
		{"http://churn:0/", "url"},
		{"http://churn:65536/", "url"},
		{"http://models..internal/", "url"},
		// Names that look numeric but are not.
		{"http://0x7g.internal/", ""},
		{"http://v2.models.internal:8080", ""},
		{"http://churn-v6.:8080", ""},
		{"http://127.0.0.1:65535", ""},
	} {
		err := ValidateUpstreamURL("routes[0].upstream_url", c.url)
		if c.rule == "" {
			if err != nil {
				t.Errorf("%s: %v", c.url, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Rule != c.rule || e.Field != "routes[0].upstream_url" {
			t.Errorf("%s: %v, want a field error with rule %s", c.url, err, c.rule)
			continue
		}
		if strings.Contains(e.Message, "hunter2") {
			t.Errorf("%s: the message repeats the password: %s", c.url, e.Message)
		}
	}
}

func TestParseUpstreamHost(t *testing.T) {
	for _, c := range []struct {
		host, addr, name string
		unusual, bad     bool
	}{
		{host: "127.0.0.1", addr: "127.0.0.1"},
		{host: "2852039166", addr: "169.254.169.254", unusual: true},
		{host: "0xa9fea9fe", addr: "169.254.169.254", unusual: true},
		{host: "0251.0376.0251.0376", addr: "169.254.169.254", unusual: true},
		{host: "169.254.169.254.", addr: "169.254.169.254", unusual: true},
		{host: "169.254.0xa9fe", addr: "169.254.169.254", unusual: true},
		{host: "169.0xfea9fe", addr: "169.254.169.254", unusual: true},
		{host: "0", addr: "0.0.0.0", unusual: true},
		{host: "0x", addr: "0.0.0.0", unusual: true},
		{host: "4294967295", addr: "255.255.255.255", unusual: true},
		{host: "4294967296", bad: true},
		{host: "1.2.3.4.5", bad: true},
		{host: "1.256.3.4", bad: true},
		{host: "09", bad: true},
		{host: "1..2", bad: true},
		{host: "example.123", bad: true},
		{host: "fe80::1%eth0", addr: "fe80::1"},
		{host: "fd00:ec2::254", addr: "fd00:ec2::254"},
		{host: "::ffff:169.254.169.254", addr: "::ffff:169.254.169.254"},
		{host: "1.2.3.4:5", bad: true},
		{host: "Metadata.Google.Internal.", name: "metadata.google.internal"},
		{host: "0x7g", name: "0x7g"},
		{host: "a.b.", name: "a.b"},
		{host: "a..b", bad: true},
		{host: ".", bad: true},
		{host: "", bad: true},
	} {
		h, err := ParseUpstreamHost(c.host)
		if c.bad {
			if err == nil {
				t.Errorf("%q: %+v, want an error", c.host, h)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.host, err)
			continue
		}
		var addr string
		if h.Addr.IsValid() {
			addr = h.Addr.String()
		}
		if addr != c.addr || h.Name != c.name || h.Unusual != c.unusual {
			t.Errorf("%q: addr %q name %q unusual %v, want %q %q %v", c.host, addr, h.Name, h.Unusual, c.addr, c.name, c.unusual)
		}
	}
}

func TestUpstreamRule(t *testing.T) {
	rule := func(p UpstreamPolicy) *UpstreamRule {
		t.Helper()
		r, err := NewUpstreamRule(p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	def := rule(UpstreamPolicy{})
	self := rule(UpstreamPolicy{
		Self:  []string{"127.0.0.1:8080", "0.0.0.0:9090", "[::1]:7070"},
		Local: []netip.Addr{netip.MustParseAddr("10.1.1.1")},
	})
	noMetadata := rule(UpstreamPolicy{Metadata: []string{}})
	custom := rule(UpstreamPolicy{
		Allow:     []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8")},
		Deny:      []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")},
		DenyNames: []string{"Vault.Internal."},
		Metadata:  []string{"10.8.0.1", "meta.corp"},
	})
	// dns is the resolver the server would ask, as a table.
	dns := map[string][]netip.Addr{
		"localhost":       {netip.MustParseAddr("::ffff:127.0.0.1")},
		"rebind.example":  {netip.MustParseAddr("10.2.3.4"), netip.MustParseAddr("169.254.169.254")},
		"metadata-alias":  {netip.MustParseAddr("fd00:ec2::254")},
		"churn.internal":  {netip.MustParseAddr("10.2.3.4")},
		"nat64.example":   {netip.MustParseAddr("64:ff9b::a9fe:a9fe")},
		"self-any.lan":    {netip.MustParseAddr("10.1.1.1")},
		"alibaba.example": {netip.MustParseAddr("100.100.100.200")},
	}
	lookup := func(host string) ([]netip.Addr, error) {
		if a, ok := dns[host]; ok {
			return a, nil
		}
		return nil, errors.New("no such host")
	}
	for _, c := range []struct {
		name string
		r    *UpstreamRule
		url  string
		ok   bool
	}{
		{"loopback model server", def, "http://127.0.0.1:9000", true},
		{"loopback by name", def, "http://localhost:9000", true},
		{"unresolved name", def, "http://churn-v6:8080", true},
		{"private network", def, "http://10.2.3.4", true},
		{"aws metadata v6", def, "http://[fd00:ec2::254]/", false},
		{"aws metadata v6 with a zone", def, "http://[fd00:ec2::254%25eth0]/", false},
		{"alibaba", def, "http://100.100.100.200/", false},
		{"azure wireserver", def, "http://168.63.129.16/", false},
		{"ecs credentials", def, "http://169.254.170.2/v2/credentials", false},
		{"gcp name", def, "http://metadata.google.internal/", false},
		{"gcp name any case, trailing dot", def, "http://Metadata.Google.Internal./", false},
		{"gcp short name", def, "http://metadata/computeMetadata/v1/", false},
		{"name resolving to metadata", def, "http://metadata-alias/", false},
		{"name resolving to alibaba", def, "http://alibaba.example/", false},
		{"one of the answers is link-local", def, "http://rebind.example/", false},
		{"nat64 of the metadata address", def, "http://[64:ff9b::a9fe:a9fe]/", false},
		{"name resolving through nat64", def, "http://nat64.example/", false},
		{"link-local", def, "http://169.254.169.254/", false},
		{"metadata list emptied", noMetadata, "http://100.100.100.200/", true},
		{"metadata names emptied", noMetadata, "http://metadata.google.internal/", true},
		{"link-local stays refused", noMetadata, "http://169.254.169.254/", false},
		{"own listener", self, "http://127.0.0.1:8080/api/v1", false},
		{"own listener by name", self, "http://localhost:8080/", false},
		{"own listener, default port", rule(UpstreamPolicy{Self: []string{"127.0.0.1:80"}}), "http://127.0.0.1/", false},
		{"another port", self, "http://127.0.0.1:8081", true},
		{"listener on every address, loopback", self, "http://127.0.0.2:9090", false},
		{"listener on every address, local address", self, "http://10.1.1.1:9090", false},
		{"listener on every address, by name", self, "http://self-any.lan:9090", false},
		{"listener on every address, other host", self, "http://10.1.1.2:9090", true},
		{"ipv6 listener", self, "http://[::1]:7070", false},
		{"ipv6 listener, other port", self, "http://[::1]:7071", true},
		{"allowed", custom, "http://churn.internal", true},
		{"denied network", custom, "http://10.9.2.3", false},
		{"not allowed", custom, "http://192.168.1.1", false},
		{"denied name", custom, "http://vault.internal:8200", false},
		{"custom metadata address", custom, "http://10.8.0.1", false},
		{"custom metadata name", custom, "http://META.corp.", false},
		{"default metadata replaced", custom, "http://10.0.0.1", true},
	} {
		err := c.r.CheckUpstreamURL("routes[0].upstream_url", c.url, lookup)
		if c.ok {
			if err != nil {
				t.Errorf("%s: %s: %v", c.name, c.url, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Rule != "upstream_address" || e.Field != "routes[0].upstream_url" {
			t.Errorf("%s: %s: %v, want a field error with rule upstream_address", c.name, c.url, err)
		}
	}
}

func TestUpstreamRuleConfigErrors(t *testing.T) {
	for _, p := range []UpstreamPolicy{
		{Self: []string{"no-port"}},
		{Self: []string{"host.example:80"}},
		{Self: []string{"127.0.0.1:http"}},
		{Metadata: []string{"10.0.0.0/33"}},
		{Metadata: []string{"1.2.3.4.5"}},
		{DenyNames: []string{"10.0.0.1"}},
	} {
		if _, err := NewUpstreamRule(p); err == nil {
			t.Errorf("%+v: no error", p)
		}
	}
}

func TestParseUpstreamList(t *testing.T) {
	pfx, names, err := ParseUpstreamList([]string{" 10.0.0.0/8", "[fd00:ec2::254]", "::ffff:10.1.0.0/112", "Meta.Example.", "", "2852039166"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "fd00:ec2::254/128", "10.1.0.0/16", "169.254.169.254/32"}
	if len(pfx) != len(want) {
		t.Fatalf("prefixes %v, want %v", pfx, want)
	}
	for i, p := range pfx {
		if p.String() != want[i] {
			t.Errorf("prefix %d: %s, want %s", i, p, want[i])
		}
	}
	if len(names) != 1 || names[0] != "meta.example" {
		t.Errorf("names %q", names)
	}
}

// FuzzParseUpstreamHost holds ParseUpstreamHost to a second reading of
// inet_aton's forms, written apart (strconv's base prefixes), and to
// netip for the usual spellings.
func FuzzParseUpstreamHost(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "2852039166", "0xa9fea9fe", "0251.0376.0251.0376", "169.254.169.254.", "0", "0x", "1.2.3.4.5",
		"08", "0x1g", "a.b", "a.0x1", "fe80::1%eth0", "::ffff:1.2.3.4", "1.2.3.4:5", "", ".", "..", "1..2", "0o7", "0b1", "1_0", "4294967296", "ÿ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		h, err := ParseUpstreamHost(host)
		if usual, perr := netip.ParseAddr(host); perr == nil && usual.Is4() {
			if err != nil || h.Addr != usual || h.Unusual {
				t.Fatalf("%q: %+v %v, want %s in its usual spelling", host, h, err, usual)
			}
		}
		if strings.Contains(host, ":") {
			return
		}
		ref, refOK := referenceIPv4(strings.TrimSuffix(host, "."))
		switch {
		case err != nil:
			if refOK {
				t.Fatalf("%q: %v, the reference reads %s", host, err, ref)
			}
		case h.Addr.IsValid():
			if !refOK || ref != h.Addr {
				t.Fatalf("%q: %s, the reference reads %s (%v)", host, h.Addr, ref, refOK)
			}
			if h.Unusual != (host != h.Addr.String()) {
				t.Fatalf("%q: unusual %v", host, h.Unusual)
			}
		default:
			if refOK {
				t.Fatalf("%q: a name, the reference reads %s", host, ref)
			}
			if h.Name != strings.ToLower(h.Name) || strings.HasSuffix(h.Name, ".") || h.Name == "" {
				t.Fatalf("%q: name %q", host, h.Name)
			}
		}
	})
}

// referenceIPv4 reads inet_aton's forms with strconv's base prefixes (0x
// hex, 0 octal), after refusing the prefixes inet_aton does not know.
func referenceIPv4(h string) (netip.Addr, bool) {
	parts := strings.Split(h, ".")
	if len(parts) == 0 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		if p == "" || strings.ContainsAny(p, "_+-") || strings.HasPrefix(strings.ToLower(p), "0o") || strings.HasPrefix(strings.ToLower(p), "0b") {
			return netip.Addr{}, false
		}
		if strings.EqualFold(p, "0x") {
			p = "0"
		}
		n, err := strconv.ParseUint(p, 0, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = n
	}
	var b [4]byte
	last := vals[len(vals)-1]
	for i, v := range vals[:len(vals)-1] {
		if v > 255 {
			return netip.Addr{}, false
		}
		b[i] = byte(v)
	}
	free := 4 - (len(vals) - 1)
	if free < 4 && last >= 1<<(8*free) {
		return netip.Addr{}, false
	}
	for i := 3; i >= len(vals)-1; i-- {
		b[i] = byte(last)
		last >>= 8
	}
	return netip.AddrFrom4(b), true
}
