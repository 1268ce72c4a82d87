// Command terraform-provider-mlregistry is the mlregistry Terraform
// provider plugin. Terraform starts it; run it with -debug to attach a
// debugger (it prints TF_REATTACH_PROVIDERS to export).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime/pprof"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/provider"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() {
	var debug bool
	flag.BoolVar(&debug, "debug", false, "run the provider with support for debuggers such as delve")
	flag.Parse()

	// MLREGISTRY_PROVIDER_CPUPROFILE=DIR writes a CPU profile of this
	// process into DIR (cpu-<pid>.pprof) until Terraform stops it: for
	// bench/tfplan.sh's BENCH_TF_PROFILE.
	if dir := os.Getenv("MLREGISTRY_PROVIDER_CPUPROFILE"); dir != "" {
		stop, err := startCPUProfile(dir)
		if err != nil {
			log.Fatal(err)
		}
		defer stop()
	}

	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address:         "registry.terraform.io/mlregistry/mlregistry",
		Debug:           debug,
		ProtocolVersion: 6,
	})
	if err != nil {
		log.Fatal(err)
	}
}

func startCPUProfile(dir string) (stop func(), err error) {
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("cpu-%d.pprof", os.Getpid())))
	if err != nil {
		return nil, fmt.Errorf("MLREGISTRY_PROVIDER_CPUPROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("MLREGISTRY_PROVIDER_CPUPROFILE: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}
