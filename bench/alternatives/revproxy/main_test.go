package main

import (
	"net"
	"net/http"
	"testing"

	"github.com/mlregistry/terraform-provider-mlregistry/bench/alternatives/internal/common"
	"github.com/mlregistry/terraform-provider-mlregistry/bench/alternatives/internal/proxycheck"
)

func TestLikeForLike(t *testing.T) {
	proxycheck.Run(t, func(t *testing.T, ups []string) string {
		routes, err := common.Routes(ups)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: New(routes)}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		return "http://" + ln.Addr().String()
	})
}
