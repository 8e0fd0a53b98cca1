package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/adminclient"
	"github.com/gatehouse-iot/gatehouse/registry"
)

func (a *app) enrollmentCommand() *cobra.Command {
	var scope string
	cmd := group("enrollment", "Manage enrollments: which devices may provision themselves, and how",
		a.enrollmentCreate(&scope), a.enrollmentGet(&scope), a.enrollmentList(&scope), a.enrollmentDelete(&scope),
		a.enrollmentEnable(&scope, true), a.enrollmentEnable(&scope, false),
		a.enrollmentVerificationCode(&scope), a.enrollmentVerify(&scope))
	cmd.PersistentFlags().StringVar(&scope, "scope", gatehouse.DefaultScope, "scope of the enrollments")
	return cmd
}

func (a *app) enrollmentCreate(scope *string) *cobra.Command {
	var (
		typ, attestation, certFile, thumbprint, expires, config string
		certPolicy, allocation, reprovision                     string
		tags, endpoints                                         []string
		verified, disabled                                      bool
		maxUses                                                 int
	)
	cmd := &cobra.Command{
		Use:   "create ID --type group|individual --attestation symmetric_key|x509|token",
		Short: "Create an enrollment; generated keys or tokens are shown once",
		Long: `Create an enrollment. An individual enrollment admits one device, whose
registration ID is the enrollment's ID; a group admits every device that
proves membership.

Attestation:
  symmetric_key  keys are generated and printed once (a group's devices
                 use keys derived from the group key)
  x509           --cert names the device's certificate (individual; or
                 --thumbprint) or the group's CA certificate, which must
                 then be verified: see "enrollment verification-code"
  token          a bootstrap token is generated and printed once; --max-uses
                 and --expires bound it

--expires bounds the token for token attestation, the enrollment otherwise:
a duration from now (30d, 36h) or an RFC 3339 time.`,
		Example: `  gatehouse enrollment create line-1 --type group --attestation symmetric_key --tag line=1
  gatehouse enrollment create batch-7 --type group --attestation token --max-uses 50 --expires 7d
  gatehouse enrollment create sensor-1 --type individual --attestation x509 --cert sensor-1.pem
  gatehouse enrollment create factory --type group --attestation x509 --cert factory-ca.pem \
      --allocation hashed --endpoint hub-a.example.com:8883=2 --endpoint hub-b.example.com:8883`,
		Args: exactArgs("ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			req := registry.EnrollmentCreate{ID: args[0], Type: gatehouse.EnrollmentType(typ),
				Attestation: gatehouse.Attestation{Type: gatehouse.AttestationType(attestation), Thumbprint: thumbprint, Verified: verified, MaxUses: maxUses},
				Credentials: gatehouse.CredentialPolicy{Certificate: gatehouse.CertificatePolicy(certPolicy)},
				Allocation:  gatehouse.Allocation{Policy: gatehouse.AllocationPolicy(allocation)},
				Reprovision: gatehouse.ReprovisionPolicy(reprovision)}
			switch req.Type {
			case gatehouse.EnrollmentGroup, gatehouse.EnrollmentIndividual:
			default:
				return usagef("--type must be group or individual, not %q", typ)
			}
			switch req.Attestation.Type {
			case gatehouse.AttestSymmetricKey, gatehouse.AttestX509, gatehouse.AttestToken:
			default:
				return usagef("--attestation must be symmetric_key, x509 or token, not %q", attestation)
			}
			if maxUses < 0 {
				return usagef("--max-uses must be positive")
			}
			if disabled {
				req.Enabled = new(false)
			}
			if certFile != "" {
				b, err := readInput("--cert", certFile)
				if err != nil {
					return err
				}
				req.Attestation.Certificate = string(b)
			}
			if expires != "" {
				t, err := parseExpires(expires, time.Now())
				if err != nil {
					return err
				}
				if req.Attestation.Type == gatehouse.AttestToken {
					req.Attestation.ExpiresAt = &t
				} else {
					req.ExpiresAt = &t
				}
			}
			var err error
			if req.InitialTags, err = parseTags(tags); err != nil {
				return err
			}
			if req.InitialConfig, err = jsonFlag("--config", config); err != nil {
				return err
			}
			if req.Allocation.Endpoints, err = parseEndpoints(endpoints); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			e, err := c.CreateEnrollment(cmd.Context(), *scope, req)
			if err != nil {
				return err
			}
			err = a.printEnrollment(e)
			if at := e.Attestation; at.PrimaryKey != "" || at.SecondaryKey != "" || at.Token != "" {
				fmt.Fprintln(a.stderr, "Store the generated secrets now: they will not be shown again.")
			}
			return err
		}),
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "group or individual (required)")
	f.StringVar(&attestation, "attestation", "", "symmetric_key, x509 or token (required)")
	f.StringVar(&certFile, "cert", "", "x509: the device's certificate (individual) or the group's CA certificate, PEM")
	f.StringVar(&thumbprint, "thumbprint", "", "x509, individual: the SHA-256 of the device's certificate, hex")
	f.BoolVar(&verified, "verified", false, "x509 group: vouch for the CA without proof of possession (needs an admin token)")
	f.IntVar(&maxUses, "max-uses", 0, "token: how many registrations the token admits (default 1)")
	f.StringVar(&expires, "expires", "", "when the token (or the enrollment) expires: 30d, 36h or an RFC 3339 time")
	f.StringArrayVar(&tags, "tag", nil, "initial device tag as key=value (repeatable)")
	f.StringVar(&config, "config", "", "initial device configuration: a JSON object, or @FILE")
	f.StringVar(&certPolicy, "certificate", "", "issue devices a certificate: required, optional (default) or none")
	f.StringVar(&allocation, "allocation", "", "endpoint allocation: static (default) or hashed")
	f.StringArrayVar(&endpoints, "endpoint", nil, "endpoint as host[:port][=weight] (repeatable)")
	f.StringVar(&reprovision, "reprovision", "", "on re-registration: migrate (default), reset or never")
	f.BoolVar(&disabled, "disabled", false, "create the enrollment disabled")
	cmd.MarkFlagRequired("type")
	cmd.MarkFlagRequired("attestation")
	return cmd
}

// parseExpires turns --expires into an instant: a duration from now or an
// RFC 3339 time.
func parseExpires(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := gatehouse.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, usagef("--expires %q: give a duration such as 30d or 36h, or an RFC 3339 time", s)
	}
	return now.Add(time.Duration(d)), nil
}

// parseEndpoints parses --endpoint host[:port][=weight] flags.
func parseEndpoints(vals []string) ([]gatehouse.Endpoint, error) {
	var out []gatehouse.Endpoint
	for _, v := range vals {
		host, w, hasWeight := strings.Cut(v, "=")
		ep := gatehouse.Endpoint{Host: host}
		if host == "" {
			return nil, usagef("--endpoint %q has no host", v)
		}
		if hasWeight {
			n, err := strconv.Atoi(w)
			if err != nil || n < 1 {
				return nil, usagef("--endpoint %q: the weight after = must be a positive integer", v)
			}
			ep.Weight = n
		}
		out = append(out, ep)
	}
	return out, nil
}

func (a *app) enrollmentGet(scope *string) *cobra.Command {
	return getCommand(a, scope, "Show an enrollment (never its secrets)", (*adminclient.Client).GetEnrollment, a.printEnrollment)
}

func (a *app) enrollmentList(scope *string) *cobra.Command {
	var (
		typ  string
		opts adminclient.EnrollmentListOptions
		all  bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List enrollments",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			opts.Type = gatehouse.EnrollmentType(typ)
			if err := checkLimit(opts.Limit); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			page := &registry.EnrollmentPage{}
			if all {
				page.Items, err = allItems(c.Enrollments(cmd.Context(), *scope, opts))
			} else {
				page, err = c.ListEnrollments(cmd.Context(), *scope, opts)
			}
			if err != nil {
				return err
			}
			return a.printPage(page, page.NextCursor, "enrollments", func() error { return a.printEnrollments(page.Items) })
		}),
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "only group or individual enrollments")
	addPageFlags(f, &opts.Limit, &opts.Cursor, &all)
	return cmd
}

func (a *app) enrollmentDelete(scope *string) *cobra.Command {
	return a.deleteCommand(scope, "enrollment", "Delete an enrollment (the devices it admitted stay)",
		(*adminclient.Client).DeleteEnrollment)
}

// enrollmentEnable is "enrollment enable" or "enrollment disable".
func (a *app) enrollmentEnable(scope *string, enable bool) *cobra.Command {
	use, short := "enable ID", "Let an enrollment admit devices again"
	if !enable {
		use, short = "disable ID", "Stop an enrollment from admitting devices (those it admitted stay)"
	}
	var ifMatch string
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs("ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			e, err := c.PatchEnrollment(cmd.Context(), *scope, args[0], registry.EnrollmentPatch{Enabled: &enable}, ifMatch)
			if err != nil {
				return err
			}
			return a.printEnrollment(e)
		}),
	}
	ifMatchFlag(cmd, &ifMatch, "enrollment")
	return cmd
}

func (a *app) enrollmentVerificationCode(scope *string) *cobra.Command {
	return &cobra.Command{
		Use:   "verification-code ID",
		Short: "Start proof of possession of a group's CA key",
		Long: `Ask for a verification code for a group X.509 enrollment. Prove that you hold
the CA's private key by signing a certificate whose subject CN is the code
with it, then pass that certificate to "enrollment verify".`,
		Example: `  code=$(gatehouse enrollment verification-code factory)
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout proof.key -subj "/CN=$code" |
    openssl x509 -req -CA factory-ca.pem -CAkey factory-ca.key -days 1 -out proof.pem
  gatehouse enrollment verify factory --cert proof.pem`,
		Args: exactArgs("ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			code, err := c.NewVerificationCode(cmd.Context(), *scope, args[0])
			if err != nil {
				return err
			}
			if a.jsonMode() {
				return a.printJSON(map[string]string{"verificationCode": code})
			}
			_, err = fmt.Fprintln(a.stdout, code)
			return err
		}),
	}
}

func (a *app) enrollmentVerify(scope *string) *cobra.Command {
	var certFile string
	cmd := &cobra.Command{
		Use:   "verify ID --cert FILE",
		Short: "Prove possession of a group's CA key with a certificate naming the verification code",
		Args:  exactArgs("ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			proof, err := readInput("--cert", certFile)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			e, err := c.VerifyCA(cmd.Context(), *scope, args[0], proof)
			if err != nil {
				return err
			}
			return a.printEnrollment(e)
		}),
	}
	cmd.Flags().StringVar(&certFile, "cert", "", "the proof certificate, PEM (required)")
	cmd.MarkFlagRequired("cert")
	return cmd
}

func (a *app) registrationCommand() *cobra.Command {
	var scope string
	get := &cobra.Command{
		Use:   "get REGISTRATION_ID",
		Short: "Show how a device's latest registration went",
		Args:  exactArgs("REGISTRATION_ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			r, err := c.GetRegistration(cmd.Context(), scope, args[0])
			if err != nil {
				return err
			}
			if a.jsonMode() {
				return a.printJSON(r)
			}
			t := newTable(a.stdout)
			t.row("Registration ID:", r.RegistrationID)
			t.row("Scope:", r.Scope)
			t.row("Enrollment:", orDash(r.EnrollmentID))
			t.row("Device:", orDash(r.DeviceID))
			t.row("Status:", string(r.Status))
			t.row("Substatus:", orDash(r.Substatus))
			t.row("Assigned hub:", orDash(r.AssignedHub))
			if r.ErrorCode != "" {
				t.row("Error:", r.ErrorMessage+" ("+r.ErrorCode+")")
			}
			t.row("Attempts:", strconv.Itoa(r.Attempts))
			t.row("Operation:", orDash(r.OperationID))
			t.row("Created:", fmtTime(r.CreatedAt))
			t.row("Updated:", fmtTime(r.UpdatedAt))
			return t.flush()
		}),
	}
	cmd := group("registration", "Show device registration records", get)
	cmd.PersistentFlags().StringVar(&scope, "scope", gatehouse.DefaultScope, "scope of the registrations")
	return cmd
}

// attestationSummary is the ATTESTATION column: the type, and what limits it.
func attestationSummary(e *gatehouse.Enrollment) string {
	at := e.Attestation
	s := string(at.Type)
	switch {
	case at.Type == gatehouse.AttestX509 && e.Type == gatehouse.EnrollmentGroup && !at.Verified:
		s += " (unverified)"
	case at.Type == gatehouse.AttestToken:
		s += fmt.Sprintf(" (%d/%d used)", at.Uses, at.MaxUses)
	}
	return s
}

func registrationsOf(e *gatehouse.Enrollment) string {
	if e.MaxRegistrations > 0 {
		return fmt.Sprintf("%d/%d", e.Registrations, e.MaxRegistrations)
	}
	return strconv.Itoa(e.Registrations)
}

// printEnrollments prints enrollments as a table, one per row.
func (a *app) printEnrollments(enrollments []*gatehouse.Enrollment) error {
	t := newTable(a.stdout, "ID", "TYPE", "ATTESTATION", "ENABLED", "REGISTRATIONS", "EXPIRES", "CREATED")
	for _, e := range enrollments {
		t.row(e.ID, string(e.Type), attestationSummary(e), strconv.FormatBool(e.Enabled), registrationsOf(e), fmtTimePtr(e.ExpiresAt), fmtTime(e.CreatedAt))
	}
	return t.flush()
}

// printEnrollment prints one enrollment, or its JSON. The table shows the
// secrets the server returned (only ever in the answer to a creation).
func (a *app) printEnrollment(e *gatehouse.Enrollment) error {
	if a.jsonMode() {
		return a.printJSON(e)
	}
	at := e.Attestation
	t := newTable(a.stdout)
	t.row("ID:", e.ID)
	t.row("Scope:", e.Scope)
	t.row("Type:", string(e.Type))
	t.row("Attestation:", string(at.Type))
	t.row("Enabled:", strconv.FormatBool(e.Enabled))
	if at.Thumbprint != "" {
		t.row("Thumbprint:", at.Thumbprint)
	}
	if at.Type == gatehouse.AttestX509 && e.Type == gatehouse.EnrollmentGroup {
		t.row("Verified:", strconv.FormatBool(at.Verified))
	}
	if at.Type == gatehouse.AttestToken {
		t.row("Token uses:", fmt.Sprintf("%d of %d", at.Uses, at.MaxUses))
		t.row("Token expires:", fmtTimePtr(at.ExpiresAt))
	}
	t.row("Registrations:", registrationsOf(e))
	t.row("Initial tags:", fmtTags(e.InitialTags))
	t.row("Initial config:", fmtJSON(e.InitialConfig))
	t.row("Certificate:", orDash(string(e.Credentials.Certificate)))
	alloc := string(e.Allocation.Policy)
	for _, ep := range e.Allocation.Endpoints {
		alloc += fmt.Sprintf(" %s=%d", ep.Host, ep.Weight)
	}
	t.row("Allocation:", orDash(alloc))
	t.row("Reprovision:", orDash(string(e.Reprovision)))
	if e.PreProvision != nil {
		t.row("Pre-provision webhook:", e.PreProvision.URL)
	}
	t.row("Expires:", fmtTimePtr(e.ExpiresAt))
	t.row("ETag:", e.ETag)
	t.row("Created:", fmtTime(e.CreatedAt))
	t.row("Updated:", fmtTime(e.UpdatedAt))
	if at.PrimaryKey != "" {
		t.row("Primary key:", at.PrimaryKey)
	}
	if at.SecondaryKey != "" {
		t.row("Secondary key:", at.SecondaryKey)
	}
	if at.Token != "" {
		t.row("Token:", at.Token)
	}
	return t.flush()
}
