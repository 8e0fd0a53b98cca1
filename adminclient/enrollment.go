package adminclient

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"net/url"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

func enrollmentsPath(scope string) string { return scopePath(scope) + "/enrollments" }

func enrollmentPath(scope, id string) string { return enrollmentsPath(scope) + "/" + seg(id) }

// CreateEnrollment creates an enrollment. Secrets not supplied in
// req.Attestation (symmetric keys, a bootstrap token) are generated and
// returned in the answer's Attestation, this once: the server never shows
// them again.
func (c *Client) CreateEnrollment(ctx context.Context, scope string, req registry.EnrollmentCreate) (*gatehouse.Enrollment, error) {
	var e gatehouse.Enrollment
	if err := c.do(ctx, request{method: http.MethodPost, path: enrollmentsPath(scope), body: req}, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// GetEnrollment returns one enrollment, without its secrets.
func (c *Client) GetEnrollment(ctx context.Context, scope, id string) (*gatehouse.Enrollment, error) {
	var e gatehouse.Enrollment
	if err := c.do(ctx, request{method: http.MethodGet, path: enrollmentPath(scope, id)}, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// EnrollmentListOptions filters and pages an enrollment listing.
type EnrollmentListOptions struct {
	Type   gatehouse.EnrollmentType // group, individual, or empty for both
	Limit  int                      // page size; 0 for the server's default
	Cursor string                   // NextCursor of the previous page; empty for the first
}

func (o EnrollmentListOptions) query() url.Values {
	q := url.Values{}
	if o.Type != "" {
		q.Set("type", string(o.Type))
	}
	addPaging(q, o.Limit, o.Cursor)
	return q
}

// ListEnrollments returns one page of a scope's enrollments, ordered by ID.
// Pass the page's NextCursor as opts.Cursor for the next; it is empty on
// the last.
func (c *Client) ListEnrollments(ctx context.Context, scope string, opts EnrollmentListOptions) (*registry.EnrollmentPage, error) {
	items, next, err := getList[*gatehouse.Enrollment](ctx, c, request{method: http.MethodGet, path: enrollmentsPath(scope), query: opts.query()})
	if err != nil {
		return nil, err
	}
	return &registry.EnrollmentPage{Items: items, NextCursor: next}, nil
}

// Enrollments iterates over every enrollment matching opts, fetching pages
// as it goes. It yields an error (and stops) if a page cannot be fetched.
func (c *Client) Enrollments(ctx context.Context, scope string, opts EnrollmentListOptions) iter.Seq2[*gatehouse.Enrollment, error] {
	return pages(opts.Cursor, func(cursor string) ([]*gatehouse.Enrollment, string, error) {
		opts.Cursor = cursor
		return getList[*gatehouse.Enrollment](ctx, c, request{method: http.MethodGet, path: enrollmentsPath(scope), query: opts.query()})
	})
}

// PatchEnrollment changes an enrollment's policy with a JSON merge patch
// (RFC 7386): members absent from patch stay, null returns a member to its
// default, objects merge. ifMatch, if not empty, is the etag the enrollment
// must still have (precondition_failed otherwise).
func (c *Client) PatchEnrollment(ctx context.Context, scope, id string, patch registry.EnrollmentPatch, ifMatch string) (*gatehouse.Enrollment, error) {
	b, err := json.Marshal(patch)
	if err != nil {
		return nil, err
	}
	return c.MergePatchEnrollment(ctx, scope, id, b, ifMatch)
}

// MergePatchEnrollment is PatchEnrollment with a raw merge patch, for the
// nulls that registry.EnrollmentPatch cannot express, such as
// {"maxRegistrations":null,"initialTags":{"old":null}}.
func (c *Client) MergePatchEnrollment(ctx context.Context, scope, id string, patch json.RawMessage, ifMatch string) (*gatehouse.Enrollment, error) {
	var e gatehouse.Enrollment
	r := request{method: http.MethodPatch, path: enrollmentPath(scope, id), body: patch,
		contentType: "application/merge-patch+json", header: ifMatchHeader(ifMatch)}
	if err := c.do(ctx, r, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// DeleteEnrollment removes an enrollment; the devices it admitted stay.
// ifMatch, if not empty, is the etag the enrollment must still have.
func (c *Client) DeleteEnrollment(ctx context.Context, scope, id, ifMatch string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: enrollmentPath(scope, id), header: ifMatchHeader(ifMatch)}, nil)
}

// NewVerificationCode starts proof of possession of a group X.509
// enrollment's CA key: sign a certificate whose subject CN is the returned
// code with that key, and pass it to VerifyCA.
func (c *Client) NewVerificationCode(ctx context.Context, scope, id string) (string, error) {
	var out struct {
		VerificationCode string `json:"verificationCode"`
	}
	if err := c.do(ctx, request{method: http.MethodPost, path: enrollmentPath(scope, id) + "/verification-code"}, &out); err != nil {
		return "", err
	}
	return out.VerificationCode, nil
}

// VerifyCA completes proof of possession with proofPEM, a certificate
// signed by the group's CA whose subject CN is the verification code. A
// refused proof is an *APIError with code attestation_failed.
func (c *Client) VerifyCA(ctx context.Context, scope, id string, proofPEM []byte) (*gatehouse.Enrollment, error) {
	var e gatehouse.Enrollment
	body := map[string]string{"certificate": string(proofPEM)}
	if err := c.do(ctx, request{method: http.MethodPost, path: enrollmentPath(scope, id) + "/verify", body: body}, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// GetRegistration returns the record of a device's latest registration.
func (c *Client) GetRegistration(ctx context.Context, scope, registrationID string) (*gatehouse.Registration, error) {
	var r gatehouse.Registration
	if err := c.do(ctx, request{method: http.MethodGet, path: scopePath(scope) + "/registrations/" + seg(registrationID)}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
