package registry

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// An import job's upload is spooled to the node's disk before it runs.
// Enrollment files carry device keys and tokens, so the spool is never
// written in the clear: it is encrypted with AES-256-GCM under a random key
// made for the job that lives only in the node's memory (a restart makes the
// spool unreadable, which is why the job then fails). The file is a series
// of chunks, each sealed with a nonce made of its counter and a flag marking
// the last one (the STREAM construction), so a chunk cannot be reordered,
// dropped or the file cut short without the reader noticing.

const (
	spoolChunk    = 64 << 10
	spoolKeySize  = 32
	spoolOverhead = 16 // the GCM tag
)

func newSpoolAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != spoolKeySize {
		return nil, fmt.Errorf("spool key: %d bytes, want %d", len(key), spoolKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// spoolNonce is the nonce of chunk n: 8 bytes of counter, 3 zero bytes and
// the last-chunk flag.
func spoolNonce(n uint64, last bool) []byte {
	nonce := make([]byte, 12)
	binary.BigEndian.PutUint64(nonce, n)
	if last {
		nonce[11] = 1
	}
	return nonce
}

// spoolWriter encrypts what is written to it into w. Close seals the last
// chunk; a spool without it does not read.
type spoolWriter struct {
	w    io.Writer
	aead cipher.AEAD
	buf  []byte
	n    uint64
	out  []byte
}

func newSpoolWriter(w io.Writer, key []byte) (*spoolWriter, error) {
	aead, err := newSpoolAEAD(key)
	if err != nil {
		return nil, err
	}
	return &spoolWriter{w: w, aead: aead, buf: make([]byte, 0, spoolChunk), out: make([]byte, 0, spoolChunk+spoolOverhead)}, nil
}

func (s *spoolWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := min(spoolChunk-len(s.buf), len(p))
		s.buf = append(s.buf, p[:k]...)
		p, written = p[k:], written+k
		// A full chunk is sealed only when more follows, so that the last
		// chunk is always shorter than a full one.
		if len(s.buf) == spoolChunk && len(p) > 0 {
			if err := s.flush(false); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

func (s *spoolWriter) flush(last bool) error {
	if len(s.buf) == spoolChunk && last {
		// The last chunk must be short: seal this one and an empty last.
		if err := s.flush(false); err != nil {
			return err
		}
	}
	s.out = s.aead.Seal(s.out[:0], spoolNonce(s.n, last), s.buf, nil)
	s.n++
	s.buf = s.buf[:0]
	_, err := s.w.Write(s.out)
	return err
}

// Close seals the last chunk. It does not close the underlying writer.
func (s *spoolWriter) Close() error { return s.flush(true) }

// errSpoolDamaged is a spool that does not decrypt: cut short, changed, or
// sealed with another key.
var errSpoolDamaged = errors.New("the spooled upload is damaged or cut short")

// spoolReader decrypts a spool.
type spoolReader struct {
	r    io.Reader
	aead cipher.AEAD
	in   []byte
	buf  []byte // decrypted, not yet read
	n    uint64
	done bool
}

func newSpoolReader(r io.Reader, key []byte) (*spoolReader, error) {
	aead, err := newSpoolAEAD(key)
	if err != nil {
		return nil, err
	}
	return &spoolReader{r: r, aead: aead, in: make([]byte, spoolChunk+spoolOverhead)}, nil
}

func (s *spoolReader) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.done {
			return 0, io.EOF
		}
		n, err := io.ReadFull(s.r, s.in)
		last := false
		switch {
		case err == nil:
		case errors.Is(err, io.ErrUnexpectedEOF):
			last = true
		case errors.Is(err, io.EOF):
			return 0, errSpoolDamaged // no last chunk
		default:
			return 0, err
		}
		pt, err := s.aead.Open(s.in[:0:0], spoolNonce(s.n, last), s.in[:n], nil)
		if err != nil {
			return 0, errSpoolDamaged
		}
		s.n++
		s.buf, s.done = pt, last
	}
	k := copy(p, s.buf)
	s.buf = s.buf[k:]
	return k, nil
}
