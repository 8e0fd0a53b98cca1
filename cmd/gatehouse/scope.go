package main

import (
	"github.com/spf13/cobra"
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
	return group("scope", "Manage scopes (tenants)", create, list, get)
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
