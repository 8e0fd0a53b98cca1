package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

func (a *app) eventsCommand() *cobra.Command {
	var (
		scope  string
		after  int64
		limit  int
		follow bool
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show a scope's event log, or follow it live",
		Long: `Show a scope's event log: every change to its devices and tokens, in order.

With --follow, print events as they happen until interrupted (Ctrl-C),
starting after --after; a dropped connection is resumed without losing events.
With -o json, --follow prints one JSON document per line (NDJSON).`,
		Example: `  gatehouse events --after 120 --limit 20
  gatehouse events --follow -o json | jq .type`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if after < 0 {
				return usagef("--after must be a sequence number >= 0")
			}
			if err := checkLimit(limit); err != nil {
				return err
			}
			if follow && limit != 0 {
				return usagef("--limit does not apply to --follow")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if follow {
				return a.followEvents(cmd.Context(), func(ctx context.Context, fn func(*gatehouse.Event) error) error {
					return c.StreamEvents(ctx, scope, after, fn)
				})
			}
			evs, err := c.Events(cmd.Context(), scope, after, limit)
			if err != nil {
				return err
			}
			if a.jsonMode() {
				return a.printJSON(items(evs))
			}
			if err := a.printEvents(evs); err != nil {
				return err
			}
			if n := len(evs); n > 0 && (n == limit || limit == 0 && n == registry.DefaultPageSize) {
				fmt.Fprintf(a.stderr, "More events may follow: add --after %d.\n", evs[n-1].Seq)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&scope, "scope", gatehouse.DefaultScope, "scope of the events")
	f.Int64Var(&after, "after", 0, "show events after this sequence number")
	f.IntVar(&limit, "limit", 0, "at most this many events (default: the server's, 100)")
	f.BoolVarP(&follow, "follow", "f", false, "stream events as they happen, until interrupted")
	return cmd
}

// followEvents prints a live stream, one line per event, until the context
// ends (which is how a follow ends normally: Ctrl-C).
func (a *app) followEvents(ctx context.Context, stream func(context.Context, func(*gatehouse.Event) error) error) error {
	if !a.jsonMode() {
		fmt.Fprintf(a.stdout, followHeader, "SEQ", "TIME", "TYPE", "SUBJECT", "ACTOR")
	}
	err := stream(ctx, func(e *gatehouse.Event) error {
		if a.jsonMode() {
			b, err := json.Marshal(e)
			if err != nil {
				return err
			}
			_, err = a.stdout.Write(append(b, '\n'))
			return err
		}
		_, err := fmt.Fprintf(a.stdout, followRow, e.Seq, fmtTime(e.Time), e.Type, orDash(e.Subject), orDash(e.Actor))
		return err
	})
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if ctx.Err() != nil {
			return nil
		}
	}
	return err
}
