package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	tfresource "github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/app"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/app/apptest"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/client"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
	"github.com/mlregistry/terraform-provider-mlregistry/internal/testcert"
)

// TestAccProvider_privateCA: a registry serving HTTPS with a certificate
// from a private CA is refused until the provider trusts that CA, through
// ca_file or MLREGISTRY_CA_FILE; then it applies and re-plans empty.
func TestAccProvider_privateCA(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: set TF_ACC=1")
	}
	ca := testcert.NewCA(t)
	certFile, keyFile := ca.Server(t)
	r := apptest.Start(t, apptest.WithConfig(func(c *app.Config) {
		c.ShutdownTimeout = 15 * time.Second
		c.TLSCertFile, c.TLSKeyFile = certFile, keyFile
	}))
	t.Setenv(EnvAddress, "")
	t.Setenv(EnvToken, "")
	t.Setenv(EnvCAFile, "")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	block := func(extra string) string {
		return fmt.Sprintf("provider \"mlregistry\" {\n  address = %q\n  token = %q\n%s}\n", r.URL, r.AdminToken, extra)
	}
	const model = `
resource "mlregistry_model" "m" {
  name = "behind-tls"
}
`
	tfresource.Test(t, tfresource.TestCase{
		ProtoV6ProviderFactories: testAccProviders,
		Steps: []tfresource.TestStep{
			{
				Config:      block("  max_retries = 0\n") + model,
				ExpectError: regexp.MustCompile(`(?s)certificate.*signed by unknown authority|x509`),
			},
			{
				Config:      block(fmt.Sprintf("  ca_file = %q\n", notPEM)) + model,
				ExpectError: regexp.MustCompile(`Invalid CA file`),
			},
			{
				PreConfig: func() { t.Setenv(EnvCAFile, ca.File) },
				Config:    block("") + model,
			},
			{
				PreConfig: func() { t.Setenv(EnvCAFile, "") },
				Config:    block(fmt.Sprintf("  ca_file = %q\n", ca.File)) + model,
				ConfigPlanChecks: tfresource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
		},
		CheckDestroy: func(*terraform.State) error {
			c, err := client.New(client.Options{Address: r.URL, Token: r.AdminToken, CAFile: ca.File, MaxRetries: -1})
			if err != nil {
				return err
			}
			if _, err := c.GetModel(context.Background(), "behind-tls"); !errors.Is(err, registry.ErrNotFound) {
				return fmt.Errorf("model after destroy: %v", err)
			}
			return nil
		},
	})
}
