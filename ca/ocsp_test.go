package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse"
	"golang.org/x/crypto/ocsp"
)

// issueLeaf issues a P-256 device certificate from a at testNow.
func issueLeaf(t testing.TB, a *Authority, now time.Time) *x509.Certificate {
	t.Helper()
	csr, err := ParseCSR(newCSRDER(t, newKey(t, "p256")))
	if err != nil {
		t.Fatal(err)
	}
	der, err := a.IssueDeviceCertificate(csr, "default", "dev-1", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestOCSPResponse(t *testing.T) {
	a, _ := mustScopeCA(t)
	leaf := issueLeaf(t, a, testNow)
	revokedAt := testNow.Add(-time.Hour).Truncate(time.Second)
	tests := []struct {
		name   string
		status OCSPStatus
	}{
		{"good", OCSPStatus{Status: ocsp.Good}},
		{"revoked", OCSPStatus{Status: ocsp.Revoked, RevokedAt: revokedAt, Reason: ocsp.KeyCompromise}},
		{"revoked unspecified", OCSPStatus{Status: ocsp.Revoked, RevokedAt: revokedAt}},
		{"unknown", OCSPStatus{Status: ocsp.Unknown}},
	}
	for _, hash := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		req, err := ocsp.CreateRequest(leaf, a.Certificate(), &ocsp.RequestOptions{Hash: hash})
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range tests {
			t.Run(hash.String()+" "+tt.name, func(t *testing.T) {
				var asked *big.Int
				der, err := a.OCSPResponse(req, func(serial *big.Int) (OCSPStatus, error) {
					asked = serial
					return tt.status, nil
				}, testNow)
				if err != nil {
					t.Fatal(err)
				}
				if asked.Cmp(leaf.SerialNumber) != 0 {
					t.Errorf("lookup asked for %x, want %x", asked, leaf.SerialNumber)
				}
				resp, err := ocsp.ParseResponseForCert(der, leaf, a.Certificate())
				if err != nil {
					t.Fatalf("ParseResponseForCert: %v", err)
				}
				if err := resp.CheckSignatureFrom(a.Certificate()); err != nil {
					t.Errorf("CheckSignatureFrom: %v", err)
				}
				checks := []struct {
					name      string
					got, want any
				}{
					{"Status", resp.Status, tt.status.Status},
					{"SerialNumber", resp.SerialNumber.String(), leaf.SerialNumber.String()},
					{"ThisUpdate", resp.ThisUpdate, testNow},
					{"NextUpdate", resp.NextUpdate, testNow.Add(time.Hour)},
					{"IssuerHash", resp.IssuerHash, hash},
					{"RawResponderName", string(resp.RawResponderName), string(a.Certificate().RawSubject)},
					{"embedded certificate", resp.Certificate == nil, true},
				}
				if tt.status.Status == ocsp.Revoked {
					checks = append(checks,
						struct {
							name      string
							got, want any
						}{"RevokedAt", resp.RevokedAt, revokedAt},
						struct {
							name      string
							got, want any
						}{"RevocationReason", resp.RevocationReason, tt.status.Reason})
				}
				for _, c := range checks {
					if c.got != c.want {
						t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
					}
				}
			})
		}
	}
}

func TestOCSPResponseErrors(t *testing.T) {
	a, root := mustScopeCA(t)
	other, _ := mustScopeCA(t)
	leaf := issueLeaf(t, a, testNow)
	req, err := ocsp.CreateRequest(leaf, a.Certificate(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// A request naming the root as issuer: not this CA's.
	rootReq, err := ocsp.CreateRequest(leaf, root.Certificate(), nil)
	if err != nil {
		t.Fatal(err)
	}
	good := func(*big.Int) (OCSPStatus, error) { return OCSPStatus{Status: ocsp.Good}, nil }
	edCA := mustRootCA(t, "ed25519", 24*time.Hour)
	edReq, err := ocsp.CreateRequest(issueLeaf(t, edCA, testNow), edCA.Certificate(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		a        *Authority
		req      []byte
		lookup   func(*big.Int) (OCSPStatus, error)
		wantResp []byte
		code     string
	}{
		{"empty", a, nil, good, ocsp.MalformedRequestErrorResponse, gatehouse.EInvalid},
		{"garbage", a, []byte("GET / HTTP/1.1"), good, ocsp.MalformedRequestErrorResponse, gatehouse.EInvalid},
		{"trailing data", a, append(bytes.Clone(req), 0), good, ocsp.MalformedRequestErrorResponse, gatehouse.EInvalid},
		{"too large", a, make([]byte, 5000), good, ocsp.MalformedRequestErrorResponse, gatehouse.ETooLarge},
		{"another CA", other, req, good, ocsp.UnauthorizedErrorResponse, gatehouse.ENotFound},
		{"the root's name", a, rootReq, good, ocsp.UnauthorizedErrorResponse, gatehouse.ENotFound},
		{"lookup fails", a, req, func(*big.Int) (OCSPStatus, error) { return OCSPStatus{}, errors.New("database on fire") }, ocsp.InternalErrorErrorResponse, gatehouse.EInternal},
		{"bad status", a, req, func(*big.Int) (OCSPStatus, error) { return OCSPStatus{Status: 9}, nil }, ocsp.InternalErrorErrorResponse, gatehouse.EInternal},
		{"Ed25519 CA", edCA, edReq, good, ocsp.InternalErrorErrorResponse, gatehouse.EInternal},
		{"bad reason", a, req, func(*big.Int) (OCSPStatus, error) { return OCSPStatus{Status: ocsp.Revoked, Reason: 7}, nil }, ocsp.InternalErrorErrorResponse, gatehouse.EInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.a.OCSPResponse(tt.req, tt.lookup, testNow)
			wantCode(t, err, tt.code)
			if !bytes.Equal(resp, tt.wantResp) {
				t.Errorf("response %x, want %x", resp, tt.wantResp)
			}
			if _, err := ocsp.ParseResponse(resp, nil); err == nil {
				t.Error("an error response parses as a success")
			}
		})
	}
	// The error responses handed out are copies: changing one does not
	// change the next.
	resp, _ := a.OCSPResponse(nil, good, testNow)
	resp[len(resp)-1] = 0x7f
	if again, _ := a.OCSPResponse(nil, good, testNow); !bytes.Equal(again, ocsp.MalformedRequestErrorResponse) {
		t.Error("the error response is shared")
	}
}

func FuzzOCSPResponse(f *testing.F) {
	a, _ := mustScopeCA(f)
	leaf := issueLeaf(f, a, testNow)
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		req, err := ocsp.CreateRequest(leaf, a.Certificate(), &ocsp.RequestOptions{Hash: h})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(req)
	}
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x03, 0x0a, 0x01, 0x01})
	allowed := map[string]bool{gatehouse.EInvalid: true, gatehouse.ETooLarge: true, gatehouse.ENotFound: true}
	lookup := func(serial *big.Int) (OCSPStatus, error) {
		if serial.Bit(0) == 1 {
			return OCSPStatus{Status: ocsp.Revoked, RevokedAt: testNow, Reason: ocsp.Superseded}, nil
		}
		return OCSPStatus{Status: ocsp.Good}, nil
	}
	f.Fuzz(func(t *testing.T, req []byte) {
		resp, err := a.OCSPResponse(req, lookup, testNow)
		if len(resp) == 0 {
			t.Fatalf("no response to send (error %v)", err)
		}
		if err != nil {
			if code := gatehouse.ErrorCode(err); !allowed[code] {
				t.Fatalf("error %v has code %q", err, code)
			}
			return
		}
		r, err := ocsp.ParseResponse(resp, a.Certificate())
		if err != nil {
			t.Fatalf("our response does not parse: %v", err)
		}
		if err := r.CheckSignatureFrom(a.Certificate()); err != nil {
			t.Fatal(err)
		}
	})
}
