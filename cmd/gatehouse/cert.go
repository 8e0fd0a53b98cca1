package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/adminclient"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// maxInputFile bounds what a command reads from a file the user names (a
// CSR, a CA certificate or key): far above any real one.
const maxInputFile = 1 << 20

// readInput reads a file named by a flag.
func readInput(flag, path string) ([]byte, error) {
	if path == "" {
		return nil, usagef("%s needs a file name", flag)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, usagef("%s: %v", flag, err)
	}
	if st.Size() > maxInputFile {
		return nil, usagef("%s: %s is %d bytes; that is no PEM file", flag, path, st.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("%s: %v", flag, err)
	}
	return b, nil
}

// writeOutput writes data to path, or to stdout when path is empty.
func (a *app) writeOutput(path string, data []byte) error {
	if path == "" || path == "-" {
		_, err := a.stdout.Write(data)
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// outputChosen reports whether -o was given, as opposed to defaulting.
func (a *app) outputChosen() bool {
	f := a.flags.Lookup("output")
	return f != nil && f.Changed
}

func (a *app) caCommand() *cobra.Command {
	var scope string
	show := &cobra.Command{
		Use:   "show",
		Short: "Print a scope's CA chain (PEM), or describe its issuing CA with -o table|json",
		Long: `Print the scope's CA chain in PEM, the issuing CA first through the root:
what verifies the scope's device certificates (openssl verify -CAfile, a
broker's trust store). With -o table or -o json, describe the issuing CA.`,
		Example: `  gatehouse ca show > chain.pem && openssl verify -CAfile chain.pem device.pem
  gatehouse ca show -o table`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if !a.outputChosen() {
				chain, err := c.CAChainPEM(cmd.Context(), scope)
				if err != nil {
					return err
				}
				return a.writeOutput("", chain)
			}
			info, err := c.CAInfo(cmd.Context(), scope)
			if err != nil {
				return err
			}
			return a.printCAInfo(info)
		}),
	}
	var certFile, keyFile, chainFile string
	imp := &cobra.Command{
		Use:   "import --cert FILE --key FILE [--chain FILE]",
		Short: "Replace a scope's issuing CA with your own (needs an admin token)",
		Long: `Replace the scope's issuing CA with an operator's CA: its certificate and
unencrypted private key in PEM, and the certificates above it (nearest first,
up to the root) as the chain. Devices then get certificates from this CA;
certificates of the previous CA stop verifying in the scope.`,
		Example: `  gatehouse ca import --cert issuing.pem --key issuing.key --chain root.pem --scope acme`,
		Args:    cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			var req registry.CAImport
			cert, err := readInput("--cert", certFile)
			if err != nil {
				return err
			}
			key, err := readInput("--key", keyFile)
			if err != nil {
				return err
			}
			defer clear(key)
			req.Certificate, req.PrivateKey = string(cert), string(key)
			if chainFile != "" {
				chain, err := readInput("--chain", chainFile)
				if err != nil {
					return err
				}
				req.Chain = string(chain)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			info, err := c.ImportCA(cmd.Context(), scope, req)
			if err != nil {
				return err
			}
			return a.printCAInfo(info)
		}),
	}
	imp.Flags().StringVar(&certFile, "cert", "", "the CA certificate, PEM (required)")
	imp.Flags().StringVar(&keyFile, "key", "", "its private key, PEM, unencrypted (required)")
	imp.Flags().StringVar(&chainFile, "chain", "", "the certificates above it, nearest first, PEM")
	imp.MarkFlagRequired("cert")
	imp.MarkFlagRequired("key")

	cmd := group("ca", "Show or replace a scope's certificate authority", show, imp)
	cmd.PersistentFlags().StringVar(&scope, "scope", gatehouse.DefaultScope, "scope of the CA")
	return cmd
}

func (a *app) certCommand() *cobra.Command {
	var scope string
	cmd := group("cert", "Issue, revoke and list device certificates",
		a.certIssue(&scope), a.certRevoke(&scope), a.certList(&scope))
	cmd.PersistentFlags().StringVar(&scope, "scope", gatehouse.DefaultScope, "scope of the certificates")
	return cmd
}

func (a *app) certIssue(scope *string) *cobra.Command {
	var device, csrFile, out string
	cmd := &cobra.Command{
		Use:   "issue --device ID --csr FILE",
		Short: "Issue a device certificate from a CSR",
		Long: `Issue a certificate to a device for the key in a PKCS #10 CSR (PEM). The
CA decides what the certificate says: CN = the device ID, and a URI SAN
urn:gatehouse:SCOPE:ID. If the device already holds a certificate this is a
renewal: the old one stays valid for the scope's renewal overlap.

Prints the certificate (PEM), or writes it to --out; -o json prints the
whole answer (serial, certificate, chain, validity, credential).`,
		Example: `  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout dev.key -subj /CN=sensor-1 -out dev.csr
  gatehouse cert issue --device sensor-1 --csr dev.csr --out dev.pem`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			csr, err := readInput("--csr", csrFile)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ic, err := c.IssueCertificate(cmd.Context(), *scope, device, csr)
			if err != nil {
				return err
			}
			if out != "" {
				if err := a.writeOutput(out, []byte(ic.Certificate)); err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "Wrote certificate %s for %s (valid until %s) to %s.\n", ic.Serial, device, fmtTime(ic.NotAfter), out)
			}
			if a.jsonMode() {
				return a.printJSON(ic)
			}
			if out == "" {
				return a.writeOutput("", []byte(ic.Certificate))
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&device, "device", "", "the device's ID (required)")
	cmd.Flags().StringVar(&csrFile, "csr", "", "the device's CSR, PEM (required)")
	cmd.Flags().StringVar(&out, "out", "", "write the certificate to this file instead of printing it")
	cmd.MarkFlagRequired("device")
	cmd.MarkFlagRequired("csr")
	return cmd
}

func (a *app) certRevoke(scope *string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "revoke SERIAL",
		Short: "Revoke a certificate (it goes on the CRL at once)",
		Long: `Revoke a certificate by its serial number (hex; as "cert list" shows it, or
as openssl prints it). The reason is an RFC 5280 name: unspecified (the
default), keyCompromise, cACompromise, affiliationChanged, superseded,
cessationOfOperation, certificateHold or privilegeWithdrawn.`,
		Example: `  gatehouse cert revoke 5f0c2a... --reason keyCompromise`,
		Args:    exactArgs("SERIAL"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			cred, err := c.RevokeCertificate(cmd.Context(), *scope, args[0], reason)
			if err != nil {
				return err
			}
			return a.printCredential(cred)
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "RFC 5280 reason, e.g. keyCompromise (default unspecified)")
	return cmd
}

func (a *app) certList(scope *string) *cobra.Command {
	var (
		expiring       string
		statuses, kind []string
		opts           adminclient.CredentialListOptions
		all            bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List a scope's credentials, e.g. those expiring soon",
		Example: `  gatehouse cert list --expiring 30d
  gatehouse cert list --device sensor-1 --status active,superseded
  gatehouse cert list --status revoked --all -o json`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if expiring != "" {
				t, err := parseExpiring(expiring, time.Now())
				if err != nil {
					return err
				}
				opts.ExpiringBefore = t
			}
			for _, s := range statuses {
				opts.Statuses = append(opts.Statuses, gatehouse.CredentialStatus(s))
			}
			for _, k := range kind {
				opts.Kinds = append(opts.Kinds, gatehouse.CredentialKind(k))
			}
			if err := checkLimit(opts.Limit); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			page := &registry.CredentialPage{}
			if all {
				page.Items, err = allItems(c.Credentials(cmd.Context(), *scope, opts))
			} else {
				page, err = c.ListCredentials(cmd.Context(), *scope, opts)
			}
			if err != nil {
				return err
			}
			return a.printPage(page, page.NextCursor, "credentials", func() error { return a.printCredentials(page.Items) })
		}),
	}
	f := cmd.Flags()
	f.StringVar(&expiring, "expiring", "", "only those expiring within this time (30d, 36h) or before this RFC 3339 time")
	f.StringVar(&opts.DeviceID, "device", "", "only this device's")
	f.StringSliceVar(&statuses, "status", nil, "only these statuses: active, superseded, revoked, expired")
	f.StringSliceVar(&kind, "kind", nil, "only these kinds: x509, symmetric_key, token")
	addPageFlags(f, &opts.Limit, &opts.Cursor, &all)
	return cmd
}

// parseExpiring turns --expiring into an instant: a duration from now
// ("30d", "36h") or an RFC 3339 time.
func parseExpiring(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := gatehouse.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, usagef("--expiring %q: give a duration such as 30d or 36h, or an RFC 3339 time", s)
	}
	return now.Add(time.Duration(d)), nil
}

func (a *app) crlCommand() *cobra.Command {
	var scope, out string
	var asPEM bool
	cmd := &cobra.Command{
		Use:   "crl",
		Short: "Fetch a scope's certificate revocation list (public: no token needed)",
		Long: `Fetch the scope's current CRL, signed by its issuing CA: DER by default,
PEM with --pem. It is written to --out, or to standard output.`,
		Example: `  gatehouse crl --out default.crl && openssl crl -inform DER -in default.crl -noout -text
  gatehouse crl --pem --scope acme`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.publicClient()
			if err != nil {
				return err
			}
			crl, err := c.CRL(cmd.Context(), scope, !asPEM)
			if err != nil {
				return err
			}
			return a.writeOutput(out, crl)
		}),
	}
	cmd.Flags().StringVar(&scope, "scope", gatehouse.DefaultScope, "scope of the CRL")
	cmd.Flags().StringVar(&out, "out", "", "write the CRL to this file instead of standard output")
	cmd.Flags().BoolVar(&asPEM, "pem", false, "PEM (an X509 CRL block) instead of DER")
	return cmd
}

// printCAInfo prints a scope's issuing CA, or its JSON.
func (a *app) printCAInfo(info *registry.CAInfo) error {
	if a.jsonMode() {
		return a.printJSON(info)
	}
	t := newTable(a.stdout)
	t.row("Scope:", info.Scope)
	t.row("Subject:", info.Subject)
	t.row("Issuer:", info.Issuer)
	t.row("Not before:", fmtTime(info.NotBefore))
	t.row("Not after:", fmtTime(info.NotAfter))
	t.row("Thumbprint:", info.Thumbprint)
	t.row("Imported:", fmt.Sprint(info.Imported))
	t.row("Chain:", fmt.Sprintf("%d certificates (gatehouse ca show prints them)", strings.Count(info.Chain, "-----BEGIN CERTIFICATE-----")))
	return t.flush()
}

// printCredential prints one credential, or its JSON.
func (a *app) printCredential(c *gatehouse.Credential) error {
	if a.jsonMode() {
		return a.printJSON(c)
	}
	return a.printCredentials([]*gatehouse.Credential{c})
}

// printCredentials prints credentials as a table, one per row.
func (a *app) printCredentials(creds []*gatehouse.Credential) error {
	t := newTable(a.stdout, "ID", "DEVICE", "KIND", "STATUS", "NOT AFTER", "REVOKED", "REASON")
	for _, c := range creds {
		t.row(c.ID, c.DeviceID, string(c.Kind), string(c.Status), fmtTimePtr(c.NotAfter), fmtTimePtr(c.RevokedAt), orDash(c.RevocationReason))
	}
	return t.flush()
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return fmtTime(*t)
}
