package server

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// The authorization model. A stage restriction on a token means what it
// says: the token can change those stages and nothing that decides what
// other stages hold or serve.
//
//	read                     every GET; dry runs (PUT .../stages/{stage}?dry_run=true,
//	                         POST /endpoints?dry_run=true, PATCH /endpoints/{e}?dry_run=true),
//	                         which change nothing and answer whether the caller could
//	write, restricted to     create models (without stage_policies) and change their
//	stages [s...]            description, owner and tags; create, update and delete
//	                         versions; flag a version that holds no other stage and
//	                         gives no weight on an endpoint bound to another stage;
//	                         change a flag reason it set itself; assign and unassign
//	                         the listed stages
//	write                    all of the above on every stage, plus stage_policies,
//	                         any flag, unflagging a version, any flag reason,
//	                         deleting a model, every endpoint write
//	admin                    all of the above, plus tokens and force deletes
//
// The route table (routes) states each route's minimum scope; handlers
// call the functions below for what depends on the request. What depends
// on stored data (the flag rules) the store decides in the write's
// transaction, from the stage restriction the request's registry.Actor
// carries.

// requireUnrestricted lets only a write (or admin) token without a stage
// restriction do what. A restricted token could otherwise reach other
// stages indirectly: by loosening a stage policy, unflagging a version, or
// pointing an endpoint's traffic at any version.
func requireUnrestricted(r *http.Request, what string) error {
	tok, ok := TokenFromContext(r.Context())
	if !ok {
		return registry.Errorf(registry.CodeUnauthenticated, "%s needs an authenticated token", what)
	}
	if !tok.Scope.Allows(registry.ScopeWrite) {
		return scopeError(tok, registry.ScopeWrite, what)
	}
	if len(tok.Stages) > 0 {
		return &registry.Error{
			Code: registry.CodePermissionDenied,
			Rule: "token_stages",
			Message: fmt.Sprintf("token %q may only change stages [%s]; %s needs a write token without a stage restriction",
				tok.Name, strings.Join(tok.Stages, ", "), what),
		}
	}
	return nil
}
