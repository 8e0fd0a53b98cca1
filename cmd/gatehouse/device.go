package main

import (
	"encoding/json"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/adminclient"
	"github.com/gatehouse-iot/gatehouse/registry"
)

func (a *app) deviceCommand() *cobra.Command {
	var scope string
	cmd := group("device", "Manage devices and their lifecycle",
		a.deviceCreate(&scope), a.deviceGet(&scope), a.deviceList(&scope), a.devicePatch(&scope),
		a.deviceSetState(&scope), a.deviceHistory(&scope), a.deviceCredentials(&scope), a.deviceRevokeCredential(&scope), a.deviceDelete(&scope))
	cmd.PersistentFlags().StringVar(&scope, "scope", gatehouse.DefaultScope, "scope of the devices")
	return cmd
}

func (a *app) deviceCreate(scope *string) *cobra.Command {
	var tags []string
	var config string
	cmd := &cobra.Command{
		Use:   "create ID",
		Short: "Register a device (it starts provisioned)",
		Example: `  gatehouse device create sensor-1 --tag site=berlin --tag model=t1000
  gatehouse device create sensor-2 --config '{"interval":60}'`,
		Args: exactArgs("ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			req := registry.DeviceCreate{ID: args[0]}
			var err error
			if req.Tags, err = parseTags(tags); err != nil {
				return err
			}
			if req.Config, err = jsonFlag("--config", config); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.CreateDevice(cmd.Context(), *scope, req)
			if err != nil {
				return err
			}
			return a.printDevice(d)
		}),
	}
	cmd.Flags().StringArrayVar(&tags, "tag", nil, "tag as key=value (repeatable)")
	cmd.Flags().StringVar(&config, "config", "", "desired configuration: a JSON object, or @FILE")
	return cmd
}

func (a *app) deviceGet(scope *string) *cobra.Command {
	return getCommand(a, scope, "Show a device", (*adminclient.Client).GetDevice, a.printDevice)
}

func (a *app) deviceList(scope *string) *cobra.Command {
	var (
		states     []string
		connection string
		seenBefore string
		seenAfter  string
		opts       adminclient.ListOptions
		all        bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List devices, filtered by state, connection and tags",
		Example: `  gatehouse device list --state active --connection offline
  gatehouse device list --tag site=berlin --tag 'model in (t1000,t2000)' --all
  gatehouse device list --tag '!decommission-after'
  gatehouse device list --last-seen-before 72h --enrollment factory-7`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			for _, s := range states {
				opts.States = append(opts.States, gatehouse.State(s))
			}
			opts.Connection = gatehouse.ConnectionStatus(connection)
			var err error
			if opts.LastSeenBefore, err = timeFlag("--last-seen-before", seenBefore, time.Now()); err != nil {
				return err
			}
			if opts.LastSeenAfter, err = timeFlag("--last-seen-after", seenAfter, time.Now()); err != nil {
				return err
			}
			if err := checkLimit(opts.Limit); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			page := &registry.DevicePage{}
			if all {
				page.Items, err = allItems(c.Devices(cmd.Context(), *scope, opts))
			} else {
				page, err = c.ListDevices(cmd.Context(), *scope, opts)
			}
			if err != nil {
				return err
			}
			return a.printPage(page, page.NextCursor, "devices", func() error { return a.printDevices(page.Items) })
		}),
	}
	f := cmd.Flags()
	f.StringSliceVar(&states, "state", nil, "only devices in this state (repeatable: any of them)")
	f.StringVar(&connection, "connection", "", "only devices online or offline")
	f.StringVar(&seenBefore, "last-seen-before", "", "only devices last seen before this time (RFC 3339, or a duration ago such as 24h); never-seen devices do not match")
	f.StringVar(&seenAfter, "last-seen-after", "", "only devices last seen at or after this time (RFC 3339, or a duration ago such as 1h)")
	f.StringVar(&opts.Enrollment, "enrollment", "", "only devices provisioned by this enrollment (its ID)")
	f.StringArrayVar(&opts.Tags, "tag", nil, "tag selector: k=v, k!=v, 'k in (a,b)', 'k notin (a,b)', k or !k (repeatable: all of them)")
	addPageFlags(f, &opts.Limit, &opts.Cursor, &all)
	return cmd
}

func (a *app) devicePatch(scope *string) *cobra.Command {
	var (
		tags, untags    []string
		config, ifMatch string
	)
	cmd := &cobra.Command{
		Use:   "patch ID",
		Short: "Change a device's tags and configuration (JSON merge patch)",
		Example: `  gatehouse device patch sensor-1 --tag site=munich --untag temp
  gatehouse device patch sensor-1 --config '{"interval":30,"debug":null}' --if-match 5f1c...`,
		Args: exactArgs("ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			patch, err := buildPatch(tags, untags, config)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.PatchDevice(cmd.Context(), *scope, args[0], patch, ifMatch)
			if err != nil {
				return err
			}
			return a.printDevice(d)
		}),
	}
	f := cmd.Flags()
	f.StringArrayVar(&tags, "tag", nil, "set a tag, key=value (repeatable)")
	f.StringArrayVar(&untags, "untag", nil, "remove a tag by key (repeatable)")
	f.StringVar(&config, "config", "", "JSON merge patch of the configuration (null removes a key), or @FILE")
	ifMatchFlag(cmd, &ifMatch, "device")
	return cmd
}

// buildPatch turns the patch flags into a device merge patch.
func buildPatch(tags, untags []string, config string) (json.RawMessage, error) {
	set, err := parseTags(tags)
	if err != nil {
		return nil, err
	}
	tagPatch := map[string]*string{}
	for k, v := range set {
		tagPatch[k] = &v
	}
	for _, k := range untags {
		if k == "" {
			return nil, usagef("--untag needs a tag key")
		}
		if _, ok := set[k]; ok {
			return nil, usagef("tag %q is both set (--tag) and removed (--untag)", k)
		}
		tagPatch[k] = nil
	}
	patch := map[string]json.RawMessage{}
	if len(tagPatch) > 0 {
		patch["tags"], _ = json.Marshal(tagPatch)
	}
	cfg, err := jsonFlag("--config", config)
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		patch["config"] = cfg
	}
	if len(patch) == 0 {
		return nil, usagef("nothing to change: pass --tag, --untag or --config")
	}
	return json.Marshal(patch)
}

func (a *app) deviceSetState(scope *string) *cobra.Command {
	var reason, ifMatch string
	cmd := &cobra.Command{
		Use:   "set-state ID STATE",
		Short: "Move a device through its lifecycle",
		Long: `Move a device to another lifecycle state: provisioned, active, inactive,
quarantined or decommissioned (terminal: credentials revoked, record kept).`,
		Example: `  gatehouse device set-state sensor-1 quarantined --reason "tamper alarm"`,
		Args:    exactArgs("ID", "STATE"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.SetState(cmd.Context(), *scope, args[0], gatehouse.State(args[1]), reason, ifMatch)
			if err != nil {
				return err
			}
			return a.printDevice(d)
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the device's history")
	ifMatchFlag(cmd, &ifMatch, "device")
	return cmd
}

func (a *app) deviceHistory(scope *string) *cobra.Command {
	return &cobra.Command{
		Use:   "history ID",
		Short: "Show a device's lifecycle history",
		Args:  exactArgs("ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			h, err := c.DeviceHistory(cmd.Context(), *scope, args[0])
			if err != nil {
				return err
			}
			if a.jsonMode() {
				return a.printJSON(items(h))
			}
			t := newTable(a.stdout, "TIME", "FROM", "TO", "ACTOR", "REASON")
			for _, ch := range h {
				t.row(fmtTime(ch.Time), orDash(string(ch.From)), string(ch.To), orDash(ch.Actor), orDash(ch.Reason))
			}
			return t.flush()
		}),
	}
}

func (a *app) deviceCredentials(scope *string) *cobra.Command {
	return &cobra.Command{
		Use:   "credentials ID",
		Short: "List a device's credentials (certificates, symmetric key, token), with their status",
		Args:  exactArgs("ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			creds, err := c.DeviceCredentials(cmd.Context(), *scope, args[0])
			if err != nil {
				return err
			}
			if a.jsonMode() {
				return a.printJSON(items(creds))
			}
			return a.printCredentials(creds)
		}),
	}
}

func (a *app) deviceRevokeCredential(scope *string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "revoke-credential ID CREDENTIAL",
		Short: "Revoke one credential of a device: a certificate, its symmetric key or its token",
		Long: `Revoke one credential of a device by the ID "device credentials" lists: a
certificate's serial, the device's symmetric key (key-...) or its bootstrap
token (tok-...). A revoked certificate goes on the CRL at once; a revoked key
refuses SAS tokens and DTLS-PSK requests signed with it, and live MQTT
sessions that used the credential are closed. The device keeps its state
(use set-state to suspend or decommission it). The reason is an RFC 5280
name (default unspecified).`,
		Example: `  gatehouse device credentials sensor-42
  gatehouse device revoke-credential sensor-42 key-3f1c0a9b2e7d41c6a8f0b2d4 --reason keyCompromise`,
		Args: exactArgs("ID", "CREDENTIAL"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			cred, err := c.RevokeCredential(cmd.Context(), *scope, args[0], args[1], reason)
			if err != nil {
				return err
			}
			return a.printCredential(cred)
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "RFC 5280 reason, e.g. keyCompromise (default unspecified)")
	return cmd
}

func (a *app) deviceDelete(scope *string) *cobra.Command {
	return a.deleteCommand(scope, "device", "Delete a device that was never seen, or one decommissioned",
		(*adminclient.Client).DeleteDevice)
}

// parseTags parses key=value flags.
func parseTags(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	tags := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--tag %q is not key=value", kv)
		}
		if _, dup := tags[k]; dup {
			return nil, usagef("tag %q is given twice", k)
		}
		tags[k] = v
	}
	return tags, nil
}

// jsonFlag returns a flag's JSON value, read from a file for @FILE. An
// empty flag gives nil.
func jsonFlag(name, val string) (json.RawMessage, error) {
	if val == "" {
		return nil, nil
	}
	raw := []byte(val)
	if path, ok := strings.CutPrefix(val, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, usagef("%s: %v", name, err)
		}
		raw = b
	}
	if !json.Valid(raw) {
		return nil, usagef("%s is not valid JSON", name)
	}
	return gatehouse.CompactJSON(raw), nil
}

// timeFlag parses a time flag: an RFC 3339 time, or a duration meaning that
// long before now. Empty means no time.
func timeFlag(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usagef("%s must be an RFC 3339 time (2026-01-02T15:04:05Z) or a duration ago (24h)", name)
}
