package registry

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-iot/gatehouse"
)

// EnrollmentRecord is one record of an enrollment import file: an
// individual enrollment, by registration ID. Members left nil (or empty)
// are not named by the record: a new enrollment takes the default, an
// existing one keeps what it has. A record that could not be read carries
// Err and is reported, never applied.
type EnrollmentRecord struct {
	Row  int
	ID   string // the registration ID (the enrollment's ID)
	ETag string // empty: no etag check

	// Attestation holds the attestation members the record names: Type,
	// and the secret or certificate for it. Its Type is empty if the record
	// names none.
	Attestation gatehouse.Attestation

	Enabled          *bool
	DeviceIDTemplate *string
	Tags             map[string]string // initial tags to set
	Untag            []string          // initial tags to remove (CSV: an empty tags.<key> cell)
	ReplaceTags      bool              // Tags is the whole set (NDJSON initialTags)
	Config           json.RawMessage   // initial config; nil: not named

	Credentials  *gatehouse.CredentialPolicy  // the whole policy (NDJSON)
	CertPolicy   *gatehouse.CertificatePolicy // CSV certificatePolicy
	CertValidity *gatehouse.Duration          // CSV certificateValidity
	Allocation   *gatehouse.Allocation        // the whole allocation (NDJSON)
	AllocPolicy  *gatehouse.AllocationPolicy  // CSV allocation
	Endpoints    []gatehouse.Endpoint         // CSV endpoints; nil: not named
	Reprovision  *gatehouse.ReprovisionPolicy
	PreProvision *gatehouse.Webhook // NDJSON only; a URL of "" removes it
	MaxRegs      *int
	ExpiresAt    *time.Time

	Err error
}

// Enrollment CSV columns. The same names are an export's header, minus the
// secret ones, plus read-only ones an import accepts and ignores.
const (
	colID                  = "id"
	colETag                = "etag"
	colType                = "type" // read-only: individual (an import refuses group rows)
	colAttestation         = "attestation"
	colPrimaryKey          = "primaryKey"   // secret, import only
	colSecondaryKey        = "secondaryKey" // secret, import only
	colCertificate         = "certificate"
	colThumbprint          = "thumbprint"
	colToken               = "token" // secret, import only
	colTokenMaxUses        = "tokenMaxUses"
	colTokenUses           = "tokenUses" // read-only
	colTokenExpiresAt      = "tokenExpiresAt"
	colEnabled             = "enabled"
	colDeviceID            = "deviceId"
	colAllocation          = "allocation"
	colEndpoints           = "endpoints"
	colCertificatePolicy   = "certificatePolicy"
	colCertificateValidity = "certificateValidity"
	colReprovision         = "reprovision"
	colMaxRegistrations    = "maxRegistrations"
	colRegistrations       = "registrations" // read-only
	colExpiresAt           = "expiresAt"
	colConfig              = "config"
)

var enrollmentImportColumns = map[string]bool{
	colID: true, colETag: true, colType: true, colAttestation: true, colPrimaryKey: true, colSecondaryKey: true,
	colCertificate: true, colThumbprint: true, colToken: true, colTokenMaxUses: true, colTokenUses: true,
	colTokenExpiresAt: true, colEnabled: true, colDeviceID: true, colAllocation: true, colEndpoints: true,
	colCertificatePolicy: true, colCertificateValidity: true, colReprovision: true, colMaxRegistrations: true,
	colRegistrations: true, colExpiresAt: true, colConfig: true,
}

const enrollmentColumnsHelp = "id, then attestation, primaryKey, secondaryKey, certificate, thumbprint, token, tokenMaxUses, tokenExpiresAt, " +
	"enabled, deviceId, allocation, endpoints, certificatePolicy, certificateValidity, reprovision, maxRegistrations, expiresAt, config, etag or tags.<key>"

// EnrollmentReader reads the records of an enrollment import file, one at
// a time: the file is never held in memory.
type EnrollmentReader struct {
	rowSource
}

// NewEnrollmentReader reads the start of an enrollment import file (a CSV
// file's header). Its errors are about the whole file.
func NewEnrollmentReader(r io.Reader, format ImportFormat) (*EnrollmentReader, error) {
	src, err := openRowSource(r, format, enrollmentImportColumns, enrollmentColumnsHelp)
	if err != nil {
		return nil, err
	}
	return &EnrollmentReader{src}, nil
}

// Next returns the next record, or io.EOF after the last. Any other error
// means the file cannot be read further; the records before it stand.
func (er *EnrollmentReader) Next() (*EnrollmentRecord, error) {
	if er.format == ImportCSV {
		return er.nextCSV()
	}
	return er.nextNDJSON()
}

func (er *EnrollmentReader) nextCSV() (*EnrollmentRecord, error) {
	fields, line, rowErr, err := er.csvRow()
	if err != nil {
		return nil, err
	}
	// On a bad row the ID is not echoed: with the columns shifted it may be a key.
	rec := &EnrollmentRecord{Row: line, Err: rowErr}
	if rowErr != nil {
		return rec, nil
	}
	for i, f := range fields {
		c := er.cols[i]
		if err := rec.setCSV(c, f); err != nil {
			rec.Err = err
			break
		}
	}
	rec.ID = strings.Clone(rec.ID)
	return rec, nil
}

// setCSV sets the member a CSV cell names. An empty cell names nothing,
// except under tags.<key>, where it removes the tag. Cells are copied:
// the CSV reader reuses its buffers.
func (rec *EnrollmentRecord) setCSV(c csvColumn, f string) error {
	if c.kind == "tag" {
		if f == "" {
			rec.Untag = append(rec.Untag, c.tag)
		} else {
			if rec.Tags == nil {
				rec.Tags = map[string]string{}
			}
			rec.Tags[c.tag] = strings.Clone(f)
		}
		return nil
	}
	if c.kind == colID {
		rec.ID = f
		return nil
	}
	v := strings.TrimSpace(f)
	if v == "" {
		return nil
	}
	v = strings.Clone(v)
	a := &rec.Attestation
	var err error
	switch c.kind {
	case colETag:
		rec.ETag = strings.Trim(v, `"`)
	case colType:
		if v != string(gatehouse.EnrollmentIndividual) {
			return gatehouse.Errorf(gatehouse.EInvalid, "type %q: an import creates individual enrollments only; create groups with POST .../enrollments", truncate(v, 32))
		}
	case colAttestation:
		a.Type = gatehouse.AttestationType(v)
	case colPrimaryKey:
		a.PrimaryKey = v
	case colSecondaryKey:
		a.SecondaryKey = v
	case colCertificate:
		a.Certificate = v
	case colThumbprint:
		a.Thumbprint = v
	case colToken:
		a.Token = v
	case colTokenMaxUses:
		a.MaxUses, err = csvInt(c.kind, v)
	case colTokenExpiresAt:
		a.ExpiresAt, err = csvTime(c.kind, v)
	case colEnabled:
		var b bool
		switch strings.ToLower(v) {
		case "true", "yes", "1":
			b = true
		case "false", "no", "0":
		default:
			return gatehouse.Errorf(gatehouse.EInvalid, "enabled %q: use true or false", truncate(v, 32))
		}
		rec.Enabled = &b
	case colDeviceID:
		rec.DeviceIDTemplate = &v
	case colAllocation:
		p := gatehouse.AllocationPolicy(v)
		rec.AllocPolicy = &p
	case colEndpoints:
		rec.Endpoints, err = parseEndpoints(v)
	case colCertificatePolicy:
		p := gatehouse.CertificatePolicy(v)
		rec.CertPolicy = &p
	case colCertificateValidity:
		var d gatehouse.Duration
		d, err = gatehouse.ParseDuration(v)
		rec.CertValidity = &d
	case colReprovision:
		p := gatehouse.ReprovisionPolicy(v)
		rec.Reprovision = &p
	case colMaxRegistrations:
		var n int
		n, err = csvInt(c.kind, v)
		rec.MaxRegs = &n
	case colExpiresAt:
		rec.ExpiresAt, err = csvTime(c.kind, v)
	case colConfig:
		rec.Config = json.RawMessage(v)
	case colTokenUses, colRegistrations:
		// Read-only members of an export.
	}
	return err
}

func csvInt(col, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, gatehouse.Errorf(gatehouse.EInvalid, "%s %q is not a whole number", col, truncate(v, 32))
	}
	return n, nil
}

func csvTime(col, v string) (*time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil, gatehouse.Errorf(gatehouse.EInvalid, "%s %q is not an RFC 3339 time (2030-01-31T00:00:00Z)", col, truncate(v, 40))
	}
	return &t, nil
}

// parseEndpoints reads "host[:port][=weight]" items separated by ";".
func parseEndpoints(v string) ([]gatehouse.Endpoint, error) {
	eps := []gatehouse.Endpoint{}
	for item := range strings.SplitSeq(v, ";") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		host, w, hasW := strings.Cut(item, "=")
		ep := gatehouse.Endpoint{Host: strings.TrimSpace(host)}
		if hasW {
			n, err := strconv.Atoi(strings.TrimSpace(w))
			if err != nil {
				return nil, gatehouse.Errorf(gatehouse.EInvalid, "endpoint %q: the weight after = must be a whole number", truncate(item, 64))
			}
			ep.Weight = n
		}
		eps = append(eps, ep)
	}
	return eps, nil
}

// FormatEndpoints writes endpoints as the endpoints column reads them.
func FormatEndpoints(eps []gatehouse.Endpoint) string {
	var b strings.Builder
	for i, ep := range eps {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(ep.Host)
		if ep.Weight > 1 {
			b.WriteString("=" + strconv.Itoa(ep.Weight))
		}
	}
	return b.String()
}

// ndjsonEnrollment is one NDJSON line: the members of an enrollment
// creation, an etag, and the read-only members of an exported enrollment
// (accepted and ignored, so that an export can be imported again).
type ndjsonEnrollment struct {
	ID               *string                      `json:"id"`
	ETag             string                       `json:"etag"`
	Type             gatehouse.EnrollmentType     `json:"type"`
	Attestation      *gatehouse.Attestation       `json:"attestation"`
	Enabled          *bool                        `json:"enabled"`
	DeviceIDTemplate *string                      `json:"deviceIdTemplate"`
	InitialTags      map[string]string            `json:"initialTags"`
	InitialConfig    json.RawMessage              `json:"initialConfig"`
	Credentials      *gatehouse.CredentialPolicy  `json:"credentials"`
	Allocation       *gatehouse.Allocation        `json:"allocation"`
	Reprovision      *gatehouse.ReprovisionPolicy `json:"reprovision"`
	PreProvision     *gatehouse.Webhook           `json:"preProvisionWebhook"`
	MaxRegistrations *int                         `json:"maxRegistrations"`
	ExpiresAt        *time.Time                   `json:"expiresAt"`

	Scope         json.RawMessage `json:"scope"`
	Registrations json.RawMessage `json:"registrations"`
	CreatedAt     json.RawMessage `json:"createdAt"`
	UpdatedAt     json.RawMessage `json:"updatedAt"`
}

func (er *EnrollmentReader) nextNDJSON() (*EnrollmentRecord, error) {
	for {
		var nr ndjsonEnrollment
		line, rowErr, err := er.ndjsonRow(&nr, "one enrollment per line")
		if err != nil {
			return nil, err
		}
		rec := &EnrollmentRecord{Row: line}
		if rowErr != nil {
			rec.Err = rowErr
			return rec, nil
		}
		if nr.ID == nil {
			rec.Err = gatehouse.Errorf(gatehouse.EInvalid, "the object has no id")
			return rec, nil
		}
		rec.ID, rec.ETag = *nr.ID, nr.ETag
		if nr.Type != "" && nr.Type != gatehouse.EnrollmentIndividual {
			rec.Err = gatehouse.Errorf(gatehouse.EInvalid, "type %q: an import creates individual enrollments only; create groups with POST .../enrollments", truncate(string(nr.Type), 32))
			return rec, nil
		}
		if nr.Attestation != nil {
			a := *nr.Attestation
			// What an export shows of a stored attestation is read-only.
			a.Uses, a.Verified, a.VerificationCode = 0, false, ""
			rec.Attestation = a
		}
		rec.Enabled, rec.DeviceIDTemplate = nr.Enabled, nr.DeviceIDTemplate
		if nr.InitialTags != nil {
			rec.Tags, rec.ReplaceTags = nr.InitialTags, true
		}
		if len(nr.InitialConfig) > 0 && !bytes.Equal(nr.InitialConfig, []byte("null")) {
			rec.Config = nr.InitialConfig
		}
		rec.Credentials, rec.Allocation, rec.Reprovision = nr.Credentials, nr.Allocation, nr.Reprovision
		rec.PreProvision, rec.MaxRegs, rec.ExpiresAt = nr.PreProvision, nr.MaxRegistrations, nr.ExpiresAt
		return rec, nil
	}
}
