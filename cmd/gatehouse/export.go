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
		scope, format, connection, outPath string
		states, tags, tagKeys              []string
	)
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export devices as NDJSON or CSV (what import reads), filtered like device list",
		Example: `  gatehouse export > devices.ndjson
  gatehouse export --format csv --tag site=berlin --state active > berlin.csv
  gatehouse export --format csv --tag-keys site,model --out fleet.csv`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if format != "ndjson" && format != "csv" {
				return usagef("--format must be ndjson or csv, not %q", format)
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
			n, err := c.ExportDevices(cmd.Context(), scope, opts, bw)
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
	fl.StringVar(&scope, "scope", gatehouse.DefaultScope, "scope of the devices")
	fl.StringVar(&format, "format", "ndjson", "ndjson or csv")
	fl.StringArrayVar(&states, "state", nil, "only devices in this state (repeatable)")
	fl.StringVar(&connection, "connection", "", "online or offline")
	fl.StringArrayVar(&tags, "tag", nil, "tag selector: k=v, k!=v, 'k in (a,b)', k, !k (repeatable)")
	fl.StringSliceVar(&tagKeys, "tag-keys", nil, "csv: the tag columns (default: every key among the devices)")
	fl.StringVar(&outPath, "out", "", "write to this file instead of stdout")
	return cmd
}
