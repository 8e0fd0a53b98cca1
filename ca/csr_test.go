package ca

import (
	"bytes"
	"crypto"
	"crypto/dsa" //lint:ignore SA1019 to test that DSA keys are refused
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"

	"github.com/gatehouse-iot/gatehouse"
)

func TestParseCSRAccepts(t *testing.T) {
	for _, kind := range acceptedKeyKinds {
		t.Run(kind, func(t *testing.T) {
			key := newKey(t, kind)
			der := newCSRDER(t, key)
			inputs := map[string][]byte{
				"DER":     der,
				"PEM":     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
				"NEW PEM": pem.EncodeToMemory(&pem.Block{Type: "NEW CERTIFICATE REQUEST", Bytes: der}),
				"PEM with surrounding space": append(append([]byte("\n  "),
					pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})...), "\n\n"...),
			}
			for name, in := range inputs {
				csr, err := ParseCSR(in)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if pub, ok := csr.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
					t.Errorf("%s: the parsed key is not the CSR's", name)
				}
			}
		})
	}
}

func TestParseCSRRejects(t *testing.T) {
	p256 := newKey(t, "p256")
	good := newCSRDER(t, p256)
	badSig := bytes.Clone(good)
	badSig[len(badSig)-5] ^= 0x01 // inside the signature's last integer

	manyExts := make([]pkix.Extension, maxCSRExtensions+1)
	for i := range manyExts {
		manyExts[i] = pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4, i + 1}, Value: []byte{0x05, 0x00}}
	}
	hugeExt := []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Value: append([]byte{0x04, 0x82, 0x14, 0x00}, make([]byte, 5120)...)}}
	csrWith := func(exts []pkix.Extension) []byte {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{ExtraExtensions: exts}, p256)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}

	tests := []struct {
		name     string
		in       []byte
		code     string
		contains string
	}{
		{"empty", nil, gatehouse.ECSRInvalid, "empty"},
		{"blank", []byte(" \n\t"), gatehouse.ECSRInvalid, "empty"},
		{"garbage", []byte("hello, I am a device"), gatehouse.ECSRInvalid, "not a valid PKCS #10"},
		{"truncated DER", good[:len(good)/2], gatehouse.ECSRInvalid, "not a valid PKCS #10"},
		{"trailing DER", append(bytes.Clone(good), 0), gatehouse.ECSRInvalid, "not a valid PKCS #10"},
		{"too large", make([]byte, MaxCSRSize+1), gatehouse.ETooLarge, "limit"},
		{"broken PEM", []byte("-----BEGIN CERTIFICATE REQUEST-----\nnot base64!\n"), gatehouse.EInvalidPEM, "not valid PEM"},
		{"wrong PEM type", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: good}), gatehouse.EInvalidPEM, `"CERTIFICATE"`},
		{"private key PEM", keyPEM(t, p256), gatehouse.EInvalidPEM, `"PRIVATE KEY"`},
		{"two PEM blocks", append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: good}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: good})...), gatehouse.EInvalidPEM, "exactly one"},
		{"PEM of garbage", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte("x")}), gatehouse.ECSRInvalid, "not a valid PKCS #10"},
		{"bad signature", badSig, gatehouse.ECSRInvalid, "the CSR's signature does not verify"},
		{"too many extensions", csrWith(manyExts), gatehouse.ECSRInvalid, "extensions"},
		{"huge extension", csrWith(hugeExt), gatehouse.ECSRInvalid, "extensions hold"},
		{"P-224", newCSRDER(t, newKey(t, "p224")), gatehouse.EUnsupportedKey, "P-224"},
		{"P-521", newCSRDER(t, newKey(t, "p521")), gatehouse.EUnsupportedKey, "P-521"},
		{"RSA 1024", newCSRDER(t, newKey(t, "rsa1024")), gatehouse.EUnsupportedKey, "1024 bits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csr, err := ParseCSR(tt.in)
			if csr != nil {
				t.Errorf("got a CSR with error %v", err)
			}
			wantCode(t, err, tt.code)
			if msg := gatehouse.ErrorMessage(err); !strings.Contains(msg, tt.contains) {
				t.Errorf("message %q does not contain %q", msg, tt.contains)
			}
		})
	}
}

func TestCheckPublicKey(t *testing.T) {
	rsaKey := newKey(t, "rsa2048").(*rsa.PrivateKey)
	big8193 := new(big.Int).Lsh(big.NewInt(1), 8192) // 8193 bits
	tests := []struct {
		name string
		pub  any
		ok   bool
	}{
		{"P-256", newKey(t, "p256").Public(), true},
		{"P-384", newKey(t, "p384").Public(), true},
		{"Ed25519", newKey(t, "ed25519").Public(), true},
		{"RSA 2048", rsaKey.Public(), true},
		{"RSA 3072", newKey(t, "rsa3072").Public(), true},
		{"P-224", newKey(t, "p224").Public(), false},
		{"P-521", newKey(t, "p521").Public(), false},
		{"RSA 1024", newKey(t, "rsa1024").Public(), false},
		{"RSA 8193", &rsa.PublicKey{N: big8193, E: 65537}, false},
		{"RSA e=3", &rsa.PublicKey{N: rsaKey.N, E: 3}, false},
		{"RSA even e", &rsa.PublicKey{N: rsaKey.N, E: 65538}, false},
		{"DSA", &dsa.PublicKey{}, false},
		{"short Ed25519", ed25519.PublicKey{1, 2, 3}, false},
		{"nil", nil, false},
		{"nil ECDSA", (*ecdsa.PublicKey)(nil), false},
		{"nil RSA", (*rsa.PublicKey)(nil), false},
		{"a string", "not a key", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPublicKey(tt.pub)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, gatehouse.EUnsupportedKey)
			if msg := gatehouse.ErrorMessage(err); !strings.Contains(msg, "P-256") && !strings.Contains(msg, "65537") && !strings.Contains(msg, "Ed25519") {
				t.Errorf("message %q does not say what is accepted", msg)
			}
		})
	}
}

func FuzzParseCSR(f *testing.F) {
	der := newCSRDER(f, newKey(f, "p256"))
	f.Add(der)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	f.Add(newCSRDER(f, newKey(f, "ed25519")))
	f.Add(newCSRDER(f, newKey(f, "rsa2048")))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{0x30, 0x82, 0xff, 0xff})
	f.Add([]byte{})
	allowed := map[string]bool{
		gatehouse.ETooLarge: true, gatehouse.EInvalidPEM: true,
		gatehouse.ECSRInvalid: true, gatehouse.EUnsupportedKey: true,
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseCSR(data)
		if err != nil {
			if csr != nil {
				t.Fatal("a CSR and an error")
			}
			if code := gatehouse.ErrorCode(err); !allowed[code] {
				t.Fatalf("error %v has code %q", err, code)
			}
			return
		}
		if err := CheckPublicKey(csr.PublicKey); err != nil {
			t.Fatalf("accepted a CSR whose key fails CheckPublicKey: %v", err)
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("accepted a CSR whose signature does not verify: %v", err)
		}
	})
}
