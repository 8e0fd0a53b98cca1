package main

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/adminclient"
)

func (a *app) exportCommand() *cobra.Command {
	var (
		scope, format, connection, outPath, kind, enrType, attestation string
		states, tags, tagKeys                                          []string
	)
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export devices or enrollments as NDJSON or CSV (what import reads), filtered like the listings",
		Long: `Export devices (filtered like device list) or, with --kind enrollments, enrollments
(filtered by --type and --attestation). An enrollment export holds no secret:
no key, token, token hash or webhook secret; imported again with --mode update
it changes nothing.`,
		Example: `  gatehouse export > devices.ndjson
  gatehouse export --kind enrollments --format csv --attestation x509 > x509.csv
  gatehouse export --format csv --tag site=berlin --state active > berlin.csv
  gatehouse export --format csv --tag-keys site,model --out fleet.csv`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if format != "ndjson" && format != "csv" {
				return usagef("--format must be ndjson or csv, not %q", format)
			}
			switch kind {
			case "devices":
				if enrType != "" || attestation != "" {
					return usagef("--type and --attestation select enrollments; add --kind enrollments")
				}
			case "enrollments":
				if len(states) > 0 || len(tags) > 0 || connection != "" {
					return usagef("--state, --tag and --connection select devices; enrollments take --type and --attestation")
				}
			default:
				return usagef("--kind must be devices or enrollments, not %q", kind)
			}
			opts := adminclient.ExportOptions{Format: format, TagKeys: tagKeys}
			for _, s := range states {
				opts.Filter.States = append(opts.Filter.States, gatehouse.State(s))
			}
			opts.Filter.Connection = gatehouse.ConnectionStatus(connection)
			opts.Filter.Tags = tags
			c, err := a.client()
			if err != nil {
				return err
			}
			var w io.Writer = a.stdout
			var f *os.File
			if outPath != "" {
				if f, err = os.Create(outPath); err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			bw := bufio.NewWriterSize(w, 256<<10)
			var n int64
			if kind == "enrollments" {
				n, err = c.ExportEnrollments(cmd.Context(), scope, adminclient.EnrollmentExportOptions{Format: format, TagKeys: tagKeys,
					Type: gatehouse.EnrollmentType(enrType), Attestation: gatehouse.AttestationType(attestation)}, bw)
			} else {
				n, err = c.ExportDevices(cmd.Context(), scope, opts, bw)
			}
			if ferr := bw.Flush(); err == nil {
				err = ferr
			}
			if err != nil {
				return err
			}
			if f != nil {
				if err := f.Close(); err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "wrote %d bytes to %s\n", n, outPath)
			}
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&scope, "scope", gatehouse.DefaultScope, "scope of the devices or enrollments")
	fl.StringVar(&kind, "kind", "devices", "devices or enrollments")
	fl.StringVar(&enrType, "type", "", "enrollments: individual or group (default both)")
	fl.StringVar(&attestation, "attestation", "", "enrollments: symmetric_key, x509 or token")
	fl.StringVar(&format, "format", "ndjson", "ndjson or csv")
	fl.StringArrayVar(&states, "state", nil, "only devices in this state (repeatable)")
	fl.StringVar(&connection, "connection", "", "online or offline")
	fl.StringArrayVar(&tags, "tag", nil, "tag selector: k=v, k!=v, 'k in (a,b)', k, !k (repeatable)")
	fl.StringSliceVar(&tagKeys, "tag-keys", nil, "csv: the tag columns (default: every key among the exported devices or enrollments)")
	fl.StringVar(&outPath, "out", "", "write to this file instead of stdout")
	return cmd
}
