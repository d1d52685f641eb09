package sign

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/scrypt"
)

// PEM block types of cosign key files.
const (
	PEMSigstorePrivateKey = "ENCRYPTED SIGSTORE PRIVATE KEY"
	PEMCosignPrivateKey   = "ENCRYPTED COSIGN PRIVATE KEY"
	PEMPrivateKey         = "PRIVATE KEY"
	PEMECPrivateKey       = "EC PRIVATE KEY"
	PEMPublicKey          = "PUBLIC KEY"
)

// PasswordEnv is where cosign (and sluice) read a private key's password.
const PasswordEnv = "COSIGN_PASSWORD"

// ErrWrongPassword reports an encrypted key that the password does not open.
var ErrWrongPassword = errors.New("wrong password for the encrypted private key")

// The scrypt parameters cosign's envelope accepts (go-securesystemslib's
// legacy, standard and OWASP levels); anything else is refused so that a
// crafted file cannot make decryption arbitrarily expensive.
var scryptLevels = []scryptParams{{32768, 8, 1}, {65536, 8, 1}, {131072, 8, 1}}

// newKeyParams is what EncryptPrivateKey uses: cosign's current default.
var newKeyParams = scryptParams{65536, 8, 1}

type scryptParams struct {
	N int `json:"N"`
	R int `json:"r"`
	P int `json:"p"`
}

// envelope is the JSON inside an encrypted cosign key's PEM block. []byte
// fields are base64 in JSON, as in go-securesystemslib.
type envelope struct {
	KDF struct {
		Name   string       `json:"name"`
		Params scryptParams `json:"params"`
		Salt   []byte       `json:"salt"`
	} `json:"kdf"`
	Cipher struct {
		Name  string `json:"name"`
		Nonce []byte `json:"nonce"`
	} `json:"cipher"`
	Ciphertext []byte `json:"ciphertext"`
}

// LoadPrivateKey reads a PEM private key: cosign's encrypted format
// (opened with password), or an unencrypted PKCS#8 or SEC1 EC key (password
// ignored). Only ECDSA P-256 keys are accepted: that is what cosign
// generates and what its simple-signing verification expects.
func LoadPrivateKey(data, password []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("read private key: no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case PEMSigstorePrivateKey, PEMCosignPrivateKey:
		der, derr := decryptEnvelope(block.Bytes, password)
		if derr != nil {
			return nil, fmt.Errorf("read private key: %w", derr)
		}
		key, err = x509.ParsePKCS8PrivateKey(der)
	case PEMPrivateKey:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case PEMECPrivateKey:
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("read private key: PEM type %q: want %s, %s or %s", block.Type, PEMSigstorePrivateKey, PEMPrivateKey, PEMECPrivateKey)
	}
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("read private key: a %T key: only ECDSA P-256 keys are supported", key)
	}
	return ec, nil
}

func decryptEnvelope(data, password []byte) ([]byte, error) {
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("decode encrypted key: %w", err)
	}
	if env.KDF.Name != "scrypt" {
		return nil, fmt.Errorf("encrypted key: unknown kdf %q (want scrypt)", env.KDF.Name)
	}
	if env.Cipher.Name != "nacl/secretbox" {
		return nil, fmt.Errorf("encrypted key: unknown cipher %q (want nacl/secretbox)", env.Cipher.Name)
	}
	known := false
	for _, l := range scryptLevels {
		known = known || l == env.KDF.Params
	}
	if !known {
		return nil, fmt.Errorf("encrypted key: unsupported scrypt parameters N=%d r=%d p=%d", env.KDF.Params.N, env.KDF.Params.R, env.KDF.Params.P)
	}
	if len(env.Cipher.Nonce) != 24 {
		return nil, errors.New("encrypted key: nonce is not 24 bytes")
	}
	k, err := scrypt.Key(password, env.KDF.Salt, env.KDF.Params.N, env.KDF.Params.R, env.KDF.Params.P, 32)
	if err != nil {
		return nil, fmt.Errorf("encrypted key: %w", err)
	}
	var key [32]byte
	var nonce [24]byte
	copy(key[:], k)
	copy(nonce[:], env.Cipher.Nonce)
	plain, ok := secretbox.Open(nil, env.Ciphertext, &nonce, &key)
	if !ok {
		return nil, ErrWrongPassword
	}
	return plain, nil
}

// EncryptPrivateKey writes key in cosign's encrypted format (PEM type
// ENCRYPTED SIGSTORE PRIVATE KEY, as `cosign generate-key-pair` does).
func EncryptPrivateKey(key *ecdsa.PrivateKey, password []byte, random io.Reader) ([]byte, error) {
	if random == nil {
		random = rand.Reader
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	var env envelope
	env.KDF.Name = "scrypt"
	env.KDF.Params = newKeyParams
	env.KDF.Salt = make([]byte, 32)
	env.Cipher.Name = "nacl/secretbox"
	env.Cipher.Nonce = make([]byte, 24)
	if _, err := io.ReadFull(random, env.KDF.Salt); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(random, env.Cipher.Nonce); err != nil {
		return nil, err
	}
	k, err := scrypt.Key(password, env.KDF.Salt, env.KDF.Params.N, env.KDF.Params.R, env.KDF.Params.P, 32)
	if err != nil {
		return nil, err
	}
	var boxKey [32]byte
	var nonce [24]byte
	copy(boxKey[:], k)
	copy(nonce[:], env.Cipher.Nonce)
	env.Ciphertext = secretbox.Seal(nil, der, &nonce, &boxKey)
	body, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: PEMSigstorePrivateKey, Bytes: body}), nil
}

// MarshalPublicKey writes a PKIX "PUBLIC KEY" PEM block, as cosign.pub is.
func MarshalPublicKey(pub *ecdsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: PEMPublicKey, Bytes: der}), nil
}

// LoadPublicKey reads a PKIX PEM public key (cosign.pub). Only ECDSA P-256.
func LoadPublicKey(data []byte) (*ecdsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("read public key: no PEM block")
	}
	if block.Type != PEMPublicKey {
		return nil, fmt.Errorf("read public key: PEM type %q: want %s", block.Type, PEMPublicKey)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	ec, ok := key.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("read public key: a %T key: only ECDSA P-256 keys are supported", key)
	}
	return ec, nil
}

// GenerateKeyPair makes a P-256 key pair in cosign's file formats: the
// encrypted private key and the PEM public key.
func GenerateKeyPair(password []byte) (private, public []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if private, err = EncryptPrivateKey(key, password, nil); err != nil {
		return nil, nil, err
	}
	if public, err = MarshalPublicKey(&key.PublicKey); err != nil {
		return nil, nil, err
	}
	return private, public, nil
}

// Fingerprint names a public key in messages: the first 8 bytes of the
// SHA-256 of its DER encoding, in hex.
func Fingerprint(pub *ecdsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "?"
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8])
}
