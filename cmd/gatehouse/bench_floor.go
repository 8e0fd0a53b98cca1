package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-iot/gatehouse/ca"
)

// cryptoFloor measures the cryptographic work of one registration alone,
// in this process: what no implementation of the service could avoid.
type cryptoFloor struct {
	serverTLS *tls.Config // as the server's: ECDSA P-256 leaf under a root, client certificate requested
	clientTLS *tls.Config // as the benchmark's devices: TLS 1.3, X25519, no resumption
	issuer    *ecdsa.PrivateKey
}

// newCryptoFloor makes a server certificate of the kind a Gatehouse node
// serves (an installation root, a P-256 leaf issued by package ca for the
// same host names) and an issuing key like a scope CA's.
func newCryptoFloor() (*cryptoFloor, error) {
	now := time.Now()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Gatehouse bench floor root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, err
	}
	rootCert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	root, err := ca.New(rootCert, rootKey)
	if err != nil {
		return nil, err
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	cert, err := root.IssueServerCertificate(hosts, now)
	if err != nil {
		return nil, err
	}
	serverTLS := ca.ServerTLSConfig(cert)
	serverTLS.ClientAuth = tls.RequestClientCert
	roots := x509.NewCertPool()
	roots.AddCert(rootCert)
	issuer, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &cryptoFloor{serverTLS: serverTLS, clientTLS: benchClientTLS(roots), issuer: issuer}, nil
}

// measure runs n registrations' worth of crypto from conc goroutines and
// returns the time it took. Each one: the device makes a P-256 key and
// signs a CSR; a full TLS handshake over loopback (the server's side runs
// in its own goroutine, as in a server), then one byte from the server so
// that both sides have finished; the server parses and verifies the CSR and
// makes one ECDSA P-256 signature (the certificate's). withCSR false leaves
// out the CSR work.
func (f *cryptoFloor) measure(ctx context.Context, conc, n int, withCSR bool) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	var serverWG sync.WaitGroup
	var serverErr atomic.Pointer[error]
	// serverMu orders each serverWG.Go before a later waitServers for the
	// race detector: only TCP orders the two otherwise, which it cannot see.
	// Done does not take it, so waiting under it cannot deadlock.
	var serverMu sync.Mutex
	waitServers := func() {
		serverMu.Lock()
		defer serverMu.Unlock()
		serverWG.Wait()
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serverMu.Lock()
			serverWG.Go(func() {
				defer c.Close()
				tc := tls.Server(c, f.serverTLS)
				if err := tc.Handshake(); err != nil {
					serverErr.CompareAndSwap(nil, &err)
					return
				}
				tc.Write([]byte{1})
			})
			serverMu.Unlock()
		}
	}()
	addr := ln.Addr().String()
	one := func() error {
		var csrDER []byte
		if withCSR {
			csrPEM, err := newDeviceCSR("floor-device")
			if err != nil {
				return err
			}
			b, _ := pem.Decode(csrPEM)
			csrDER = b.Bytes
		}
		c, err := tls.Dial("tcp", addr, f.clientTLS)
		if err != nil {
			return err
		}
		var b [1]byte
		_, err = c.Read(b[:])
		c.Close()
		if err != nil {
			return fmt.Errorf("read after handshake: %w", err)
		}
		if withCSR {
			csr, err := x509.ParseCertificateRequest(csrDER)
			if err != nil {
				return err
			}
			if err := csr.CheckSignature(); err != nil {
				return err
			}
			digest := sha256.Sum256(csr.RawTBSCertificateRequest)
			if _, err := ecdsa.SignASN1(rand.Reader, f.issuer, digest[:]); err != nil {
				return err
			}
		}
		return nil
	}
	// Warm up (connection setup, lazily built tables), then measure.
	for range conc {
		if err := one(); err != nil {
			return 0, err
		}
	}
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		first atomic.Pointer[error]
	)
	waitServers()
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				if err := one(); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitServers()
	elapsed := time.Since(start)
	if err := first.Load(); err != nil {
		return 0, *err
	}
	if err := serverErr.Load(); err != nil {
		return 0, fmt.Errorf("server handshake: %w", *err)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if elapsed <= 0 {
		return 0, errors.New("no time elapsed")
	}
	return elapsed, nil
}
