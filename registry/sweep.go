package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// Sweep does the registry's timed work in every scope: it marks
// credentials past notAfter expired (credential.expired), announces each
// credential once when it enters the scope's expiry lead time
// (credential.expiring), and remakes CRLs that are due. Several nodes may
// sweep at once: each change is made under the credential's row lock and
// only if still needed, so every event is written once.
func (s *Service) Sweep(ctx context.Context) error {
	scopes, err := s.store.ListScopes(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, sc := range scopes {
		if err := s.sweepScope(ctx, sc); err != nil {
			errs = append(errs, fmt.Errorf("scope %s: %w", sc.ID, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Service) sweepScope(ctx context.Context, sc *gatehouse.Scope) error {
	policy := sc.Policy.WithDefaults()
	now := s.timestamp()
	horizon := now.Add(time.Duration(policy.ExpiryLeadTime))
	after := ""
	for {
		batch, err := s.store.ListCredentials(ctx, gatehouse.CredentialFilter{Scope: sc.ID,
			Statuses: []gatehouse.CredentialStatus{gatehouse.CredentialActive}, ExpiringBefore: &horizon, After: after, Limit: 500})
		if err != nil {
			return err
		}
		for _, c := range batch {
			expired := !now.Before(*c.NotAfter)
			if !expired && c.ExpiryNotifiedAt != nil {
				continue
			}
			err := s.update(ctx, func(tx gatehouse.Tx, ev *eventLog) error {
				c, err := tx.GetCredential(sc.ID, c.ID)
				if err != nil || c.Status != gatehouse.CredentialActive {
					return err
				}
				data := map[string]any{"deviceId": c.DeviceID, "kind": c.Kind, "id": c.ID, "serial": c.Serial, "notAfter": c.NotAfter}
				if expired {
					c.Status = gatehouse.CredentialExpired
					if err := tx.UpdateCredential(c); err != nil {
						return err
					}
					return ev.append(sc.ID, gatehouse.EventCredentialExpired, gatehouse.SystemActor, gatehouse.DeviceSubject(c.DeviceID), now, data)
				}
				if c.ExpiryNotifiedAt != nil {
					return nil
				}
				c.ExpiryNotifiedAt = &now
				if err := tx.UpdateCredential(c); err != nil {
					return err
				}
				return ev.append(sc.ID, gatehouse.EventCredentialExpiring, gatehouse.SystemActor, gatehouse.DeviceSubject(c.DeviceID), now, data)
			})
			if err != nil {
				return err
			}
		}
		if len(batch) < 500 {
			break
		}
		after = batch[len(batch)-1].ID
	}
	if s.root == nil {
		return nil
	}
	crl, err := s.store.GetCRL(ctx, sc.ID)
	switch {
	case gatehouse.ErrorCode(err) == gatehouse.ENotFound, err == nil && crlDue(crl, now):
		return s.refreshCRL(ctx, sc.ID)
	}
	return err
}
