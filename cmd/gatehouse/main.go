// Command gatehouse is Gatehouse's one binary: "gatehouse serve" runs a
// server, and the other commands administer one over its admin REST API
// (scopes, API tokens, devices and their lifecycle, each scope's certificate
// authority and device certificates, enrollments and registration records,
// the event log).
//
// Run "gatehouse --help" for the commands. On the server's own host no
// configuration is needed: the admin commands find the server's URL, CA
// certificate and admin token in its data directory (./gatehouse-data by
// default, or --data-dir / GATEHOUSE_DATA_DIR).
//
// Exit status: 0 on success, 1 when the server reports an error or cannot be
// reached, 2 for a command-line mistake.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/adminclient"
)

func main() { os.Exit(Main()) }

// Main runs the command line of this process, cancelling its context on
// SIGINT or SIGTERM, and returns the exit status.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills at once
	}()
	return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
}

// run executes one command line (args without the program name) and
// returns the exit status. Tests call it in process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runEnv(ctx, args, os.Getenv, stdout, stderr)
}

// runEnv is run with the environment supplied by getenv.
func runEnv(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	a := &app{getenv: getenv, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetIn(eofReader{})
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	return a.report(cmd, err)
}

// eofReader is the commands' stdin: none of them reads it.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// app holds one command line's settings and output streams.
type app struct {
	getenv         func(string) string
	stdout, stderr io.Writer

	// Global flags.
	flags   *pflag.FlagSet
	server  string
	token   string
	caFile  string
	dataDir string
	output  string
}

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// runError is an error from running a command (as opposed to cobra's own
// errors about flags and arguments, which are usage errors).
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// exitStatus ends a command with a status and nothing more to print (the
// command has logged or printed why).
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// action adapts a command's function so that its errors are told apart
// from cobra's usage errors.
func action(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		var ue *usageError
		if err == nil || errors.As(err, &ue) {
			return err
		}
		return &runError{err}
	}
}

// report prints err for a user and returns the exit status.
func (a *app) report(cmd *cobra.Command, err error) int {
	var (
		re     *runError
		status exitStatus
		apiErr *adminclient.APIError
		te     *adminclient.TransportError
	)
	switch {
	case errors.As(err, &status):
		return int(status)
	case !errors.As(err, &re):
		// Cobra's errors (unknown flags, wrong argument counts) and ours.
		fmt.Fprintf(a.stderr, "error: %v\n", err)
		if cmd != nil {
			fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return 2
	case errors.As(err, &apiErr):
		fmt.Fprintf(a.stderr, "error: %s (%s)\n", apiErr.Message, apiErr.Code)
		if apiErr.Code == gatehouse.EUnauthenticated {
			fmt.Fprintln(a.stderr, "Check the API token: --token or GATEHOUSE_TOKEN (on the server's host, DATA/admin-token is used when neither is set).")
		}
		return 1
	case errors.As(err, &te):
		fmt.Fprintf(a.stderr, "error: %v\n", te)
		if te.Certificate() {
			fmt.Fprintln(a.stderr, "The server's certificate is not trusted: pass --ca-file (or set GATEHOUSE_CA_FILE) to the server's CA certificate, DATA/ca.pem on its host.")
		} else {
			fmt.Fprintln(a.stderr, "Is the server running there? Pass its URL with --server (or GATEHOUSE_SERVER), and its CA certificate with --ca-file.")
		}
		return 1
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(a.stderr, "error: interrupted")
		return 130
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintln(a.stderr, "error: timed out")
		return 1
	}
	fmt.Fprintf(a.stderr, "error: %v\n", re.err)
	return 1
}

// Environment variables of the global flags.
const (
	envServer  = "GATEHOUSE_SERVER"
	envToken   = "GATEHOUSE_TOKEN"
	envCAFile  = "GATEHOUSE_CA_FILE"
	envDataDir = "GATEHOUSE_DATA_DIR"
)

const (
	defaultDataDir   = "./gatehouse-data"
	defaultServerURL = "https://localhost:8443"
)

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "gatehouse",
		Short: "Gatehouse: IoT device provisioning and device registry",
		Long: `Gatehouse provisions IoT devices and keeps a registry of them.

"gatehouse serve" runs a server. The other commands administer a server over
its admin API. On the server's host they need no configuration: the server
writes its URL, CA certificate and admin token to its data directory, and the
commands read them from there.`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		Args:              cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SetOut(a.stderr)
			cmd.Help()
			return exitStatus(2)
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if a.output != "table" && a.output != "json" {
				return usagef("--output must be table or json, not %q", a.output)
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return &usageError{err.Error()} })
	f := root.PersistentFlags()
	a.flags = f
	f.StringVar(&a.server, "server", "", "server URL (env "+envServer+"; default: DATA/url, else "+defaultServerURL+")")
	f.StringVar(&a.token, "token", "", "API token (env "+envToken+"; default: DATA/admin-token for a local server)")
	f.StringVar(&a.caFile, "ca-file", "", "CA certificate to trust, PEM (env "+envCAFile+"; default: DATA/ca.pem for a local server)")
	f.StringVar(&a.dataDir, "data-dir", defaultDataDir, "the server's data directory (env "+envDataDir+")")
	f.StringVarP(&a.output, "output", "o", "table", "output format: table or json")

	root.AddCommand(a.serveCommand(), a.scopeCommand(), a.tokenCommand(), a.deviceCommand(), a.eventsCommand(),
		a.caCommand(), a.certCommand(), a.crlCommand(), a.enrollmentCommand(), a.registrationCommand(),
		a.importCommand(), a.exportCommand(), a.benchCommand(), a.simCommand())
	root.AddCommand(a.backupCommand(), a.restoreCommand())
	return root
}

// group returns a command that only holds subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			cmd.SetOut(cmd.ErrOrStderr())
			cmd.Help()
			return exitStatus(2)
		},
	}
	cmd.AddCommand(subs...)
	return cmd
}

// exactArgs is cobra.ExactArgs with a message naming the arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == len(names) {
			return nil
		}
		if len(args) < len(names) {
			return usagef("missing %s", names[len(args)])
		}
		return usagef("too many arguments: want %d (%v), got %d", len(names), names, len(args))
	}
}
