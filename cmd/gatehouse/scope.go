package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-iot/gatehouse"
)

func (a *app) scopeCommand() *cobra.Command {
	create := &cobra.Command{
		Use:   "create ID",
		Short: "Create a scope (needs an installation-wide admin token)",
		Args:  exactArgs("ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			sc, err := c.CreateScope(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.jsonMode() {
				return a.printJSON(sc)
			}
			return a.printScopes(sc)
		}),
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the scopes the token may see",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			scopes, err := c.ListScopes(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonMode() {
				return a.printJSON(items(scopes))
			}
			return a.printScopes(scopes...)
		}),
	}
	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show one scope",
		Args:  exactArgs("ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			sc, err := c.GetScope(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.jsonMode() {
				return a.printJSON(sc)
			}
			return a.printScopes(sc)
		}),
	}
	return group("scope", "Manage scopes (tenants)", create, list, get, a.scopeSetPolicy())
}

func (a *app) scopeSetPolicy() *cobra.Command {
	var scope, validity, overlap, lead string
	cmd := &cobra.Command{
		Use:   "set-policy [--cert-validity D] [--renewal-overlap D] [--expiry-lead D]",
		Short: "Set a scope's certificate policy (needs an admin token)",
		Long: `Set how long device certificates are valid, how long a renewed certificate
stays valid beside its successor, and how long before expiry a
credential.expiring event is written. Durations are like 90d, 36h or 1h30m;
settings not given keep their current value.`,
		Example: `  gatehouse scope set-policy --cert-validity 90d --renewal-overlap 24h --expiry-lead 14d
  gatehouse scope set-policy --scope acme --cert-validity 30d`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			if !f.Changed("cert-validity") && !f.Changed("renewal-overlap") && !f.Changed("expiry-lead") {
				return usagef("nothing to change: pass --cert-validity, --renewal-overlap or --expiry-lead")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			sc, err := c.GetScope(cmd.Context(), scope)
			if err != nil {
				return err
			}
			policy := sc.Policy
			for _, set := range []struct {
				flag, val string
				dst       *gatehouse.Duration
			}{
				{"cert-validity", validity, &policy.CertValidity},
				{"renewal-overlap", overlap, &policy.RenewalOverlap},
				{"expiry-lead", lead, &policy.ExpiryLeadTime},
			} {
				if !f.Changed(set.flag) {
					continue
				}
				d, err := gatehouse.ParseDuration(set.val)
				if err != nil {
					return usagef("--%s %q: give a duration such as 90d, 36h or 1h30m", set.flag, set.val)
				}
				*set.dst = d
			}
			if sc, err = c.SetScopePolicy(cmd.Context(), scope, policy); err != nil {
				return err
			}
			if a.jsonMode() {
				return a.printJSON(sc)
			}
			p := sc.Policy.WithDefaults()
			t := newTable(a.stdout)
			t.row("Scope:", sc.ID)
			t.row("Cert validity:", fmtDuration(p.CertValidity))
			t.row("Renewal overlap:", fmtDuration(p.RenewalOverlap))
			t.row("Expiry lead time:", fmtDuration(p.ExpiryLeadTime))
			return t.flush()
		}),
	}
	f := cmd.Flags()
	f.StringVar(&scope, "scope", gatehouse.DefaultScope, "the scope")
	f.StringVar(&validity, "cert-validity", "", "how long device certificates are valid (1h to 5 years; default 90d)")
	f.StringVar(&overlap, "renewal-overlap", "", "how long a renewed certificate stays valid beside its successor (default 24h)")
	f.StringVar(&lead, "expiry-lead", "", "how long before expiry credential.expiring is announced (default 14d)")
	return cmd
}

// fmtDuration shows a policy duration as the flags take it: whole days as
// 90d, anything else in Go syntax.
func fmtDuration(d gatehouse.Duration) string {
	td := time.Duration(d)
	if td != 0 && td%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", td/(24*time.Hour))
	}
	return td.String()
}

// list is the API's list envelope, printed with -o json.
type list[T any] struct {
	Items []T `json:"items"`
}

func items[T any](s []T) list[T] {
	if s == nil {
		s = []T{}
	}
	return list[T]{Items: s}
}
