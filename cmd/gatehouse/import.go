package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/adminclient"
	"github.com/gatehouse-iot/gatehouse/registry"
)

func (a *app) importCommand() *cobra.Command {
	var (
		scope, mode, format, resultPath, kind string
		show                                  int
		async                                 bool
	)
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Import devices or individual enrollments from a CSV or NDJSON file (create, upsert, update or delete)",
		Long: `Import devices (or, with --kind enrollments, individual enrollments) in bulk.
The file streams to the server, which applies it in batches while it arrives
and answers with one result per record; the results go to a result file
(NDJSON: row, id, ok, status or code and message).

Devices. CSV: a header row naming the columns: id, then optionally state, etag,
config (a JSON object) and tags.<key> (one column per tag; an empty cell sets
no tag, or removes it when updating). NDJSON: one device object per line, as
"gatehouse export --format ndjson" writes them.

Enrollments (--kind enrollments). CSV columns: id (the registration ID),
attestation (symmetric_key, x509 or token), primaryKey and secondaryKey
(base64), certificate (PEM) and/or thumbprint, token, tokenMaxUses,
tokenExpiresAt, enabled, deviceId, allocation, endpoints (host[:port][=weight]
separated by ;), certificatePolicy, certificateValidity, reprovision,
maxRegistrations, expiresAt, config (initial config, JSON), etag, tags.<key>
(initial tags). NDJSON: one enrollment object per line. The file must carry
the keys and tokens: an import never generates a secret, because it could
only show it in the result file. Nothing secret is written to the result file.
Treat the input file itself as a secret.

Modes: create (existing identical devices are "unchanged", so a re-run ends the
same way), upsert, update (an etag column, when given, must match) and delete.

Exit status: 0 if every record was applied, 1 if some were rejected or the
import stopped early.

With --async the file is uploaded as an import job: the server spools it
(encrypted) and imports it in the background, and the command prints the job's
ID. Follow it with "gatehouse import status JOB --wait", fetch the per-record
results with "gatehouse import results JOB --out F", stop it with
"gatehouse import cancel JOB", list jobs with "gatehouse import jobs".`,
		Example: `  gatehouse import devices.csv
  gatehouse import factory-7.csv --kind enrollments --mode upsert
  gatehouse import fleet.ndjson --mode upsert --scope factory-2
  gatehouse import retired.csv --mode delete --result retired.result.ndjson
  gatehouse import big.csv --async && gatehouse import status JOB --wait`,
		Args: exactArgs("FILE"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if kind != "devices" && kind != "enrollments" {
				return usagef("--kind must be devices or enrollments, not %q", kind)
			}
			m := registry.ImportMode(mode)
			if !m.Valid() {
				return usagef("--mode must be create, upsert, update or delete, not %q", mode)
			}
			f := registry.ImportFormat(format)
			if format == "" {
				switch strings.ToLower(filepath.Ext(path)) {
				case ".ndjson", ".jsonl":
					f = registry.ImportNDJSON
				default:
					f = registry.ImportCSV
				}
			} else if f != registry.ImportCSV && f != registry.ImportNDJSON {
				return usagef("--format must be csv or ndjson, not %q", format)
			}
			in, err := os.Open(path)
			if err != nil {
				return err
			}
			defer in.Close()
			if async {
				c, err := a.client()
				if err != nil {
					return err
				}
				return a.startImportJob(cmd, c, scope, bufio.NewReaderSize(in, 256<<10), adminclient.ImportOptions{Mode: m, Format: f, Kind: kind})
			}
			var size int64
			if st, err := in.Stat(); err == nil && st.Mode().IsRegular() {
				size = st.Size()
			}
			if resultPath == "" {
				resultPath = path + ".result.ndjson"
			}
			out, err := os.Create(resultPath)
			if err != nil {
				return fmt.Errorf("create the result file: %w", err)
			}
			defer out.Close()
			rw := bufio.NewWriterSize(out, 256<<10)

			c, err := a.client()
			if err != nil {
				return err
			}
			src := &countingReader{r: bufio.NewReaderSize(in, 256<<10)}
			prog := newProgress(a.stderr, size, src)
			prog.start()
			var rejected []registry.ImportResult
			start := time.Now()
			sum, err := c.ImportDevices(cmd.Context(), scope, src, adminclient.ImportOptions{Mode: m, Format: f, Kind: kind},
				func(res *registry.ImportResult, line []byte) error {
					rw.Write(line)
					rw.WriteByte('\n')
					if res == nil {
						return nil
					}
					prog.rows.Add(1)
					if !res.OK {
						prog.rejected.Add(1)
						if len(rejected) < show {
							rejected = append(rejected, *res)
						}
					}
					return nil
				})
			prog.stop()
			elapsed := time.Since(start)
			if ferr := errors.Join(rw.Flush(), out.Close()); ferr != nil && err == nil {
				err = fmt.Errorf("write the result file: %w", ferr)
			}
			if err != nil {
				if prog.rows.Load() > 0 {
					fmt.Fprintf(a.stderr, "the import broke off after %d results; they are in %s\n", prog.rows.Load(), resultPath)
				}
				return err
			}
			if a.jsonMode() {
				if err := a.printJSON(map[string]any{"summary": sum, "rejected": rejected, "resultFile": resultPath, "seconds": elapsed.Seconds()}); err != nil {
					return err
				}
			} else {
				printImportSummary(a.stdout, path, kind, scope, m, sum, rejected, resultPath, elapsed)
			}
			if sum.Rejected > 0 || !sum.Complete {
				return exitStatus(1)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&scope, "scope", gatehouse.DefaultScope, "scope to import into")
	cmd.Flags().StringVar(&mode, "mode", string(registry.ImportCreate), "create, upsert, update or delete")
	cmd.Flags().StringVar(&kind, "kind", "devices", "what the file holds: devices or enrollments (individual)")
	cmd.Flags().StringVar(&format, "format", "", "csv or ndjson (default: from the file name; csv unless .ndjson or .jsonl)")
	cmd.Flags().StringVar(&resultPath, "result", "", "where to write the per-row results (default FILE.result.ndjson)")
	cmd.Flags().IntVar(&show, "show", 10, "how many rejected rows the summary names")
	cmd.Flags().BoolVar(&async, "async", false, "upload the file as an import job, print its ID and return (see import status, results, cancel, jobs)")
	cmd.AddCommand(a.importStatusCommand(), a.importResultsCommand(), a.importCancelCommand(), a.importListCommand())
	return cmd
}

func printImportSummary(w io.Writer, path, kind, scope string, mode registry.ImportMode, s *registry.ImportSummary, rejected []registry.ImportResult, resultPath string, elapsed time.Duration) {
	rate := float64(s.Rows) / max(elapsed.Seconds(), 0.001)
	fmt.Fprintf(w, "imported %s (%s) into scope %s (mode %s): %d rows in %.1fs (%.0f rows/s)\n", path, kind, scope, mode, s.Rows, elapsed.Seconds(), rate)
	fmt.Fprintf(w, "  ok:       %d (created %d, updated %d, deleted %d, unchanged %d)\n", s.OK, s.Created, s.Updated, s.Deleted, s.Unchanged)
	fmt.Fprintf(w, "  rejected: %d\n", s.Rejected)
	if !s.Complete {
		msg := "the import stopped before the end of the file"
		if s.Error != nil {
			msg += ": " + s.Error.Message + " (" + s.Error.Code + ")"
		}
		fmt.Fprintf(w, "  INCOMPLETE: %s; the rows reported were applied, run the file again to go on\n", msg)
	}
	if len(rejected) > 0 {
		fmt.Fprintf(w, "rejected rows (the first %d):\n", len(rejected))
		for _, r := range rejected {
			fmt.Fprintf(w, "  row %d  id %q  %s: %s\n", r.Row, r.ID, r.Code, r.Message)
		}
	}
	fmt.Fprintf(w, "full results: %s\n", resultPath)
}

// countingReader counts the bytes read through it, for progress.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// progress shows an import's progress on stderr: a bar redrawn in place
// on a terminal, a plain line every few seconds otherwise.
type progress struct {
	w        io.Writer
	size     int64
	src      *countingReader
	tty      bool
	rows     atomic.Int64
	rejected atomic.Int64
	began    time.Time
	done     chan struct{}
	wg       sync.WaitGroup
}

func newProgress(w io.Writer, size int64, src *countingReader) *progress {
	p := &progress{w: w, size: size, src: src, done: make(chan struct{})}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) start() {
	p.began = time.Now()
	every := 5 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				if p.tty {
					p.draw()
					fmt.Fprintln(p.w)
				}
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
}

func (p *progress) stop() {
	close(p.done)
	p.wg.Wait()
}

func (p *progress) draw() {
	elapsed := time.Since(p.began).Seconds()
	rows := p.rows.Load()
	rate := float64(rows) / max(elapsed, 0.001)
	frac := 0.0
	if p.size > 0 {
		frac = min(1, float64(p.src.n.Load())/float64(p.size))
	}
	eta := "?"
	if frac > 0.01 {
		eta = (time.Duration(elapsed*(1-frac)/frac) * time.Second).Round(time.Second).String()
	}
	line := fmt.Sprintf("%3.0f%%  %d rows  %d rejected  %.0f rows/s  ETA %s", frac*100, rows, p.rejected.Load(), rate, eta)
	if p.tty {
		const width = 30
		n := int(frac * width)
		fmt.Fprintf(p.w, "\r[%s%s] %s\033[K", strings.Repeat("#", n), strings.Repeat(".", width-n), line)
		return
	}
	fmt.Fprintf(p.w, "import: %s\n", line)
}
