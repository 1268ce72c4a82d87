package main

import (
	"net"
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
		srv := NewServer(routes)
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Shutdown() })
		return "http://" + ln.Addr().String()
	})
}
