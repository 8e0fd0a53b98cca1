package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

func (a *app) tokenCommand() *cobra.Command {
	var scope, name, role string
	create := &cobra.Command{
		Use:   "create --name NAME --role admin|operator|viewer",
		Short: "Create an API token in a scope; the token is shown once",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			g, err := c.CreateToken(cmd.Context(), scope, registry.TokenRequest{Name: name, Role: gatehouse.Role(role)})
			if err != nil {
				return err
			}
			if a.jsonMode() {
				err = a.printJSON(g)
			} else {
				t := newTable(a.stdout)
				t.row("ID:", g.ID)
				t.row("Scope:", g.Scope)
				t.row("Name:", g.Name)
				t.row("Role:", string(g.Role))
				t.row("Token:", g.Secret)
				err = t.flush()
			}
			fmt.Fprintln(a.stderr, "Store the token now: it will not be shown again.")
			return err
		}),
	}
	create.Flags().StringVar(&name, "name", "", "a name saying who or what uses the token (required)")
	create.Flags().StringVar(&role, "role", "", "admin, operator or viewer (required)")
	create.MarkFlagRequired("name")
	create.MarkFlagRequired("role")

	list := &cobra.Command{
		Use:   "list",
		Short: "List a scope's API tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			tokens, err := c.ListTokens(cmd.Context(), scope)
			if err != nil {
				return err
			}
			if a.jsonMode() {
				return a.printJSON(items(tokens))
			}
			t := newTable(a.stdout, "ID", "NAME", "ROLE", "CREATED", "CREATED BY", "REVOKED")
			for _, tk := range tokens {
				revoked := "-"
				if tk.RevokedAt != nil {
					revoked = fmtTime(*tk.RevokedAt)
				}
				t.row(tk.ID, tk.Name, string(tk.Role), fmtTime(tk.CreatedAt), orDash(tk.CreatedBy), revoked)
			}
			return t.flush()
		}),
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token; it stops working at once",
		Args:  exactArgs("ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.RevokeToken(cmd.Context(), scope, args[0]); err != nil {
				return err
			}
			if !a.jsonMode() {
				fmt.Fprintf(a.stdout, "Revoked token %s in scope %s.\n", args[0], scope)
			}
			return nil
		}),
	}
	cmd := group("token", "Manage API tokens", create, list, revoke)
	cmd.PersistentFlags().StringVar(&scope, "scope", gatehouse.DefaultScope, "scope of the tokens")
	return cmd
}
