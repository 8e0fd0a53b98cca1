// Package secret keeps Gatehouse's secrets at rest: the installation master
// key, envelope encryption of records with it, and a Bytes type that prints
// as "[redacted]" so a secret held in memory cannot reach a log line by
// accident.
//
// # Master key
//
// The master key is 32 random bytes, stored as 64 lowercase hex characters
// and a newline in a file of mode 0600 (hex, so it can be copied into a
// password manager or a Kubernetes secret without mangling). Surrounding
// whitespace is ignored when reading. LoadOrCreateMasterKey creates the file
// on first start; LoadMasterKeyFile reads one that must already exist (for
// GATEHOUSE_MASTER_KEY_FILE). A file readable by group or others is refused.
//
// A key is named by its ID: the first 8 bytes of its SHA-256, in hex. The ID
// is not secret and goes into every sealed blob, so that keys can be rotated:
// a Keyring seals with one primary key and opens with the primary or any old
// key added with AddOldKey.
//
// # Sealed blob format
//
// Seal encrypts each record with a fresh random 32-byte data key (AES-256-GCM)
// and wraps the data key with the master key (AES-256-GCM). The blob is
//
//	offset  size  field
//	0       1     version (1)
//	1       8     master key ID
//	9       12    nonce of the wrapped data key
//	21      48    wrapped data key (32 bytes + 16-byte GCM tag)
//	69      12    nonce of the ciphertext
//	81      n+16  ciphertext of the n-byte plaintext + GCM tag
//
// The wrapped data key is authenticated with the version and key ID. The
// ciphertext is authenticated with the whole 81-byte header and the caller's
// aad, which names the record ("installation-ca-key"): a blob copied into
// another record, or with any byte changed, does not open.
package secret
