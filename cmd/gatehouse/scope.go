package main

import (
	"fmt"
	"strings"
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
	var templates []string
	var defaultTopics bool
	cmd := &cobra.Command{
		Use:   "set-policy [--cert-validity D] [--renewal-overlap D] [--expiry-lead D] [--mqtt-topic-template T]...",
		Short: "Set a scope's certificate and MQTT policy (needs an admin token)",
		Long: `Set how long device certificates are valid, how long a renewed certificate
stays valid beside its successor, and how long before expiry a
credential.expiring event is written. Durations are like 90d, 36h or 1h30m.

--mqtt-topic-template (repeatable) replaces the topic spaces the scope's
devices may use over MQTT (default devices/{deviceId}/#); {deviceId} and
{scope} fill a whole level, '+' matches one level, a last '#' one or more.
A device's devices/{deviceId}/config and /reported topics stay its own.
--mqtt-default-topics returns to the default. Settings not given keep their
current value.`,
		Example: `  gatehouse scope set-policy --cert-validity 90d --renewal-overlap 24h --expiry-lead 14d
  gatehouse scope set-policy --scope acme --cert-validity 30d
  gatehouse scope set-policy --mqtt-topic-template 'devices/{deviceId}/#' --mqtt-topic-template 'fleet/{scope}/{deviceId}/+'`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			if !f.Changed("cert-validity") && !f.Changed("renewal-overlap") && !f.Changed("expiry-lead") &&
				!f.Changed("mqtt-topic-template") && !defaultTopics {
				return usagef("nothing to change: pass --cert-validity, --renewal-overlap, --expiry-lead, --mqtt-topic-template or --mqtt-default-topics")
			}
			if defaultTopics && f.Changed("mqtt-topic-template") {
				return usagef("--mqtt-default-topics and --mqtt-topic-template exclude each other")
			}
			if f.Changed("mqtt-topic-template") {
				// Checked here too, to name the flag; the server checks again.
				if _, err := gatehouse.ParseTopicPolicy(templates); err != nil {
					return usagef("--mqtt-topic-template: %s", gatehouse.ErrorMessage(err))
				}
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
			switch {
			case defaultTopics:
				policy.MQTT = nil
			case f.Changed("mqtt-topic-template"):
				policy.MQTT = &gatehouse.MQTTPolicy{TopicTemplates: templates}
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
			topics := []string{gatehouse.DefaultTopicTemplate + " (default)"}
			if p.MQTT != nil && len(p.MQTT.TopicTemplates) > 0 {
				topics = p.MQTT.TopicTemplates
			}
			t.row("MQTT topics:", strings.Join(topics, ", "))
			return t.flush()
		}),
	}
	f := cmd.Flags()
	f.StringVar(&scope, "scope", gatehouse.DefaultScope, "the scope")
	f.StringVar(&validity, "cert-validity", "", "how long device certificates are valid (1h to 5 years; default 90d)")
	f.StringVar(&overlap, "renewal-overlap", "", "how long a renewed certificate stays valid beside its successor (default 24h)")
	f.StringVar(&lead, "expiry-lead", "", "how long before expiry credential.expiring is announced (default 14d)")
	f.StringArrayVar(&templates, "mqtt-topic-template", nil, "a topic space of the scope's devices, e.g. 'fleet/{scope}/{deviceId}/#' (repeatable; replaces the list)")
	f.BoolVar(&defaultTopics, "mqtt-default-topics", false, "return to the default topic space, devices/{deviceId}/#")
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
