package main

import (
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/server"
)

// Environment variables of the import job flags.
const (
	envImportMaxJobs   = "GATEHOUSE_IMPORT_MAX_JOBS"
	envImportMaxUpload = "GATEHOUSE_IMPORT_MAX_UPLOAD"
	envImportJobTTL    = "GATEHOUSE_IMPORT_JOB_TTL"
	envImportJobLease  = "GATEHOUSE_IMPORT_JOB_LEASE"
)

func addImportJobFlags(f *pflag.FlagSet) {
	f.String("import-max-jobs", "2", "import jobs this node uploads or runs at once; beyond, 429 (env "+envImportMaxJobs+")")
	f.String("import-max-upload", "1GiB", "largest file an import job takes: bytes, or with KiB, MiB, GiB (env "+envImportMaxUpload+")")
	f.String("import-job-ttl", "7d", "how long import jobs and their result files are kept (env "+envImportJobTTL+")")
	f.String("import-job-lease", "2m", "how long a node may go without renewing a job it runs before any node fails the job (lease_expired); the same on every node (env "+envImportJobLease+")")
}

// importJobLimits reads the import job flags.
func importJobLimits(value func(flag, env string) string) (server.ImportJobLimits, error) {
	var l server.ImportJobLimits
	if v := value("import-max-jobs", envImportMaxJobs); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 64 {
			return l, usagef("--import-max-jobs %q: want a number from 1 to 64", v)
		}
		l.MaxConcurrent = n
	}
	if v := value("import-max-upload", envImportMaxUpload); v != "" {
		n, err := parseSize(v)
		if err != nil || n < 1 {
			return l, usagef("--import-max-upload %q: want bytes, or a number with KiB, MiB or GiB", v)
		}
		l.MaxUpload = n
	}
	if v := value("import-job-ttl", envImportJobTTL); v != "" {
		d, err := gatehouse.ParseDuration(v)
		if err != nil || time.Duration(d) < time.Minute {
			return l, usagef("--import-job-ttl %q: want a duration of at least 1m, such as 7d or 36h", v)
		}
		l.TTL = time.Duration(d)
	}
	if v := value("import-job-lease", envImportJobLease); v != "" {
		d, err := gatehouse.ParseDuration(v)
		// At least 3 heartbeats (every 10 s), so that a busy node keeps its jobs.
		if err != nil || time.Duration(d) < 30*time.Second {
			return l, usagef("--import-job-lease %q: want a duration of at least 30s, such as 2m", v)
		}
		l.Lease = time.Duration(d)
	}
	return l, nil
}

// parseSize parses "1048576", "512KiB", "64MiB", "1GiB".
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > (1<<62)/mult {
		return 0, strconv.ErrSyntax
	}
	return n * mult, nil
}
