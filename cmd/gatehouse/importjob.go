package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/adminclient"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// Import jobs: "gatehouse import FILE --async" uploads the file and prints
// the job's ID; these subcommands follow the job.

// startImportJob uploads in as an import job and prints its ID (and, on a
// terminal, how to follow it).
func (a *app) startImportJob(cmd *cobra.Command, c *adminclient.Client, scope string, in io.Reader, opts adminclient.ImportOptions) error {
	j, err := c.CreateImportJob(cmd.Context(), scope, in, opts)
	if err != nil {
		return err
	}
	if a.jsonMode() {
		return a.printJSON(j)
	}
	fmt.Fprintln(a.stdout, j.ID)
	fmt.Fprintf(a.stderr, "import job %s queued; follow it with: gatehouse import status %s --wait --scope %s\n", j.ID, j.ID, scope)
	return nil
}

func (a *app) importStatusCommand() *cobra.Command {
	var scope string
	var wait bool
	cmd := &cobra.Command{
		Use:   "status JOB",
		Short: "Show an import job's state and counts (--wait: until it ends)",
		Long: `Show an import job's state (queued, running, succeeded, failed, canceled) and
its counts. Any node sharing the database answers. With --wait, poll until the
job ends, showing its progress on stderr; the exit status is then 0 if every
record was applied, 1 if some were rejected or the job did not succeed.`,
		Args: exactArgs("JOB"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			j, err := c.ImportJob(cmd.Context(), scope, args[0])
			if err != nil {
				return err
			}
			for wait && !j.State.Finished() {
				fmt.Fprintf(a.stderr, "import job %s: %s, %d rows (%d rejected)\n", j.ID, j.State, j.Rows, j.Rejected)
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(time.Second):
				}
				if j, err = c.ImportJob(cmd.Context(), scope, args[0]); err != nil {
					return err
				}
			}
			if a.jsonMode() {
				if err := a.printJSON(j); err != nil {
					return err
				}
			} else {
				printImportJob(a.stdout, j)
			}
			if wait && (j.State != gatehouse.JobSucceeded || j.Rejected > 0) {
				return exitStatus(1)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&scope, "scope", gatehouse.DefaultScope, "the job's scope")
	cmd.Flags().BoolVar(&wait, "wait", false, "poll until the job ends")
	return cmd
}

func printImportJob(w io.Writer, j *registry.ImportJobInfo) {
	t := newTable(w, "FIELD", "VALUE")
	t.row("id", j.ID)
	t.row("state", string(j.State))
	t.row("kind", j.Kind)
	t.row("mode", j.Mode)
	t.row("rows", strconv.FormatInt(j.Rows, 10))
	t.row("ok", strconv.FormatInt(j.OK, 10))
	t.row("unchanged", strconv.FormatInt(j.Unchanged, 10))
	t.row("rejected", strconv.FormatInt(j.Rejected, 10))
	t.row("created", fmtTime(j.CreatedAt)+" by "+j.CreatedBy)
	if j.StartedAt != nil {
		t.row("started", fmtTime(*j.StartedAt))
	}
	if j.FinishedAt != nil {
		t.row("finished", fmtTime(*j.FinishedAt))
	}
	if j.CancelRequested && !j.State.Finished() {
		t.row("cancel", "requested; stops before its next batch")
	}
	if j.Error != nil {
		t.row("error", j.Error.Code+": "+j.Error.Message)
	}
	t.row("node", j.Node)
	if j.HeartbeatAt != nil {
		t.row("heartbeat", fmtTime(*j.HeartbeatAt)+" (the node's last renewal of its lease)")
	}
	t.row("expires", fmtTime(j.ExpiresAt))
	t.flush()
}

func (a *app) importResultsCommand() *cobra.Command {
	var scope, out string
	cmd := &cobra.Command{
		Use:   "results JOB",
		Short: "Write an import job's per-record results (NDJSON) to stdout or --out",
		Long: `Write an import job's results: one line per record (row, id, ok, status or
code and message), then the summary, as a synchronous import writes its result
file. The node that ran the job has every record; another node has only the
rejected ones (the first 10,000), and this command says so on stderr.`,
		Args: exactArgs("JOB"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			w := a.stdout
			var f *os.File
			if out != "" {
				if f, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
					return fmt.Errorf("create the result file: %w", err)
				}
				defer f.Close()
				w = f
			}
			full, node, err := c.ImportJobResults(cmd.Context(), scope, args[0], w)
			if err != nil {
				return err
			}
			if f != nil {
				if err := f.Close(); err != nil {
					return fmt.Errorf("write the result file: %w", err)
				}
			}
			if !full {
				fmt.Fprintf(a.stderr, "only the rejected records (the first 10,000): the full result file is on node %s; ask that node for it\n", node)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&scope, "scope", gatehouse.DefaultScope, "the job's scope")
	cmd.Flags().StringVar(&out, "out", "", "write the results to this file instead of stdout")
	return cmd
}

func (a *app) importCancelCommand() *cobra.Command {
	var scope string
	cmd := &cobra.Command{
		Use:   "cancel JOB",
		Short: "Cancel an import job (it stops before its next batch; committed batches stay)",
		Args:  exactArgs("JOB"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			j, err := c.CancelImportJob(cmd.Context(), scope, args[0])
			if err != nil {
				return err
			}
			if a.jsonMode() {
				return a.printJSON(j)
			}
			fmt.Fprintf(a.stdout, "cancel requested: import job %s stops before its next batch (%d rows so far)\n", j.ID, j.Rows)
			return nil
		}),
	}
	cmd.Flags().StringVar(&scope, "scope", gatehouse.DefaultScope, "the job's scope")
	return cmd
}

func (a *app) importListCommand() *cobra.Command {
	var scope string
	var limit int
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List a scope's import jobs, newest first",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			p, err := c.ListImportJobs(cmd.Context(), scope, "", limit)
			if err != nil {
				return err
			}
			if a.jsonMode() {
				return a.printJSON(p)
			}
			t := newTable(a.stdout, "ID", "STATE", "KIND", "MODE", "ROWS", "REJECTED", "CREATED")
			for _, j := range p.Items {
				t.row(j.ID, string(j.State), j.Kind, j.Mode, strconv.FormatInt(j.Rows, 10), strconv.FormatInt(j.Rejected, 10), fmtTime(j.CreatedAt))
			}
			return t.flush()
		}),
	}
	cmd.Flags().StringVar(&scope, "scope", gatehouse.DefaultScope, "scope")
	cmd.Flags().IntVar(&limit, "limit", 20, "how many jobs")
	return cmd
}
