package main

import (
	"context"
	"fmt"
	"iter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gatehouse-iot/gatehouse/adminclient"
)

// What the list, show and delete commands of the admin nouns (devices,
// enrollments, credentials) have in common.

// addPageFlags adds the flags of a list command that pages: --limit and
// --cursor, which go into its list options, and --all.
func addPageFlags(f *pflag.FlagSet, limit *int, cursor *string, all *bool) {
	f.IntVar(limit, "limit", 0, "page size (default: the server's, 100)")
	f.StringVar(cursor, "cursor", "", "continue after a previous page (its nextCursor)")
	f.BoolVar(all, "all", false, "fetch every page")
}

// checkLimit refuses a negative --limit.
func checkLimit(limit int) error {
	if limit < 0 {
		return usagef("--limit must be positive")
	}
	return nil
}

// allItems gathers every item of a listing (--all), fetching page after
// page. It returns an empty slice rather than nil, so that JSON shows [].
func allItems[T any](seq iter.Seq2[T, error]) ([]T, error) {
	items := []T{}
	for it, err := range seq {
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, nil
}

// printPage prints one page of a listing of noun: page as JSON, or the
// table printTable writes and, when more pages follow, on stderr how to
// get them.
func (a *app) printPage(page any, nextCursor, noun string, printTable func() error) error {
	if a.jsonMode() {
		return a.printJSON(page)
	}
	if err := printTable(); err != nil {
		return err
	}
	if nextCursor != "" {
		fmt.Fprintf(a.stderr, "More %s: add --cursor %s for the next page, or --all for every page.\n", noun, nextCursor)
	}
	return nil
}

// ifMatchFlag adds --if-match, the etag the noun must still have for the
// command to change it.
func ifMatchFlag(cmd *cobra.Command, ifMatch *string, noun string) {
	cmd.Flags().StringVar(ifMatch, "if-match", "", "fail unless the "+noun+" still has this etag")
}

// getCommand is "NOUN get ID": get fetches the noun by ID from the scope,
// and print shows it, or its JSON.
func getCommand[T any](a *app, scope *string, short string,
	get func(c *adminclient.Client, ctx context.Context, scope, id string) (T, error), print func(T) error) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: short,
		Args:  exactArgs("ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			v, err := get(c, cmd.Context(), *scope, args[0])
			if err != nil {
				return err
			}
			return print(v)
		}),
	}
}

// deleteCommand is "NOUN delete ID": del removes the noun by ID from the
// scope, if it still has the --if-match etag.
func (a *app) deleteCommand(scope *string, noun, short string,
	del func(c *adminclient.Client, ctx context.Context, scope, id, ifMatch string) error) *cobra.Command {
	var ifMatch string
	cmd := &cobra.Command{
		Use:   "delete ID",
		Short: short,
		Args:  exactArgs("ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := del(c, cmd.Context(), *scope, args[0], ifMatch); err != nil {
				return err
			}
			if !a.jsonMode() {
				fmt.Fprintf(a.stdout, "Deleted %s %s from scope %s.\n", noun, args[0], *scope)
			}
			return nil
		}),
	}
	ifMatchFlag(cmd, &ifMatch, noun)
	return cmd
}
