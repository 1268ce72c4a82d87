package sqlstore

import (
	"net/url"
	"strings"
	"testing"
)

func TestRedactDSN(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://app:s3cret@db:5432/registry", "postgres://app:xxxxx@db:5432/registry"},
		{"postgres://u:secret@h:5432/db?sslmode=disable", "postgres://u:xxxxx@h:5432/db?sslmode=disable"},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"postgresql://h/db?sslmode=disable", "postgresql://h/db?sslmode=disable"},
		{"sqlite://./mlregistry.db", "sqlite://./mlregistry.db"},
		{"./mlregistry.db", "./mlregistry.db"},
		// A password with characters url.Parse reads as delimiters.
		{"postgres://u:p@ss:w@h/db?x=1", "postgres://u:xxxxx@h/db?x=1"},
		{"postgres://u:123/x@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://u:pa#ss?@h/db", "postgres://u:xxxxx@h/db"},
		// Passwords in the query, any case, anywhere in the list.
		{"postgres://u@h/db?sslmode=disable&password=s3cret", "postgres://u@h/db?sslmode=disable&password=xxxxx"},
		{"postgres://h/db?PASSWORD=s3cret&user=u", "postgres://h/db?PASSWORD=xxxxx&user=u"},
		{"postgres://h/db?PassWord=a&password=b", "postgres://h/db?PassWord=xxxxx&password=xxxxx"},
		{"postgres://h/db?pass%77ord=s3cret", "postgres://h/db?pass%77ord=xxxxx"},
		{"postgres://h/db?sslpassword=keypass&sslkey=/k", "postgres://h/db?sslpassword=xxxxx&sslkey=/k"},
		{"postgres://h/db?password", "postgres://h/db?password=xxxxx"},
		{"postgres://u:a@h/db?application_name=x@y&password=b", "postgres://u:xxxxx@y&password=xxxxx"},
		{"postgres://u:a@h/db?password=b", "postgres://u:xxxxx@h/db?password=xxxxx"},
		// libpq key=value connection strings.
		{"host=db user=u password=s3cret dbname=r", "host=db user=u password=xxxxx dbname=r"},
		{"host=db Password = 's3 cr\\'et' dbname=r", "host=db Password = xxxxx dbname=r"},
		{"host=db dbname=r", "host=db dbname=r"},
	} {
		if got := RedactDSN(tc.in); got != tc.want {
			t.Errorf("RedactDSN(%q)\n got  %q\n want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzRedactDSN: a password typed into any supported place of a DSN,
// escaped or raw, never survives RedactDSN whole.
func FuzzRedactDSN(f *testing.F) {
	for _, s := range []string{"s3cret", "p@ss:w/rd?#&", "a b'c\\d", "", "%41", "password=x", "@@@", "\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// The markers make the secret unlike anything else in the DSN.
		secret := "S3CR3T" + s + "S3CR3T"
		libpq := "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(secret) + "'"
		for _, dsn := range []string{
			"postgres://user:" + secret + "@db:5432/registry?sslmode=disable",
			"postgres://" + url.UserPassword("user", secret).String() + "@db:5432/registry",
			"postgres://user@db/registry?sslmode=disable&password=" + url.QueryEscape(secret) + "&application_name=x",
			"postgres://db/registry?PassWord=" + url.QueryEscape(secret),
			"postgresql://user:" + secret + "@db/r?password=" + url.QueryEscape(secret),
			"host=db user=u password=" + libpq + " dbname=r",
		} {
			got := RedactDSN(dsn)
			if strings.Contains(got, secret) || strings.Contains(got, url.QueryEscape(secret)) || strings.Contains(got, url.PathEscape(secret)) {
				t.Fatalf("RedactDSN(%q) = %q keeps the password", dsn, got)
			}
			if again := RedactDSN(got); again != got {
				t.Fatalf("not stable: %q -> %q -> %q", dsn, got, again)
			}
		}
	})
}
