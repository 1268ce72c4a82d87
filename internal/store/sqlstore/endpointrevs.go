package sqlstore

import (
	"context"
	"fmt"

	"github.com/mlregistry/terraform-provider-mlregistry/internal/registry"
)

// EndpointRevisions reads every endpoint's revision stamp in one
// statement. The gateway polls it: comparing stamps per endpoint is
// correct whatever order transactions commit in, which MAX(events.id) is
// not on PostgreSQL (ids are taken at insert, rows appear at commit).
func (s *Store) EndpointRevisions(ctx context.Context) (map[string]registry.EndpointRevision, error) {
	out := map[string]registry.EndpointRevision{}
	err := s.inTx(ctx, "endpoint revisions", modeRead, func(t *txn) error {
		rows, err := t.query(ctx, "SELECT name, revision, created_at, rollout_seq FROM endpoints")
		if err != nil {
			return fmt.Errorf("endpoint revisions: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				name    string
				rev     registry.EndpointRevision
				created int64
			)
			if err := rows.Scan(&name, &rev.Revision, &created, &rev.RolloutSeq); err != nil {
				return fmt.Errorf("endpoint revisions: %w", err)
			}
			rev.CreatedAt = fromMicros(created)
			out[name] = rev
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("endpoint revisions: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
