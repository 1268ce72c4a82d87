package server

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

var pgSeq atomic.Int64

// postgresDSN: TEMPORARY until storetest.PostgresDSN exists.
func postgresDSN(t *testing.T) string {
	base := os.Getenv("MLREGISTRY_TEST_POSTGRES_DSN")
	if base == "" {
		return ""
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	name := fmt.Sprintf("srvtest_%d_%d", time.Now().UnixNano(), pgSeq.Add(1))
	if _, err := db.ExecContext(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(base)
	u.Path = "/" + name
	return u.String()
}
