// Package sign makes and checks cosign-compatible key-based signatures of
// OCI images: ECDSA P-256 over a "simple signing" payload, stored as a layer
// annotation of a signature manifest, published either under the tag
// sha256-<hex>.sig (cosign's default layout) or as an OCI 1.1 referrer of
// the image (cosign's --registry-referrers-mode=oci-1-1). No transparency
// log is involved: verification is offline, against public keys.
//
// Keys: cosign's encrypted private keys (PEM "ENCRYPTED SIGSTORE PRIVATE
// KEY" or "ENCRYPTED COSIGN PRIVATE KEY": scrypt and NaCl secretbox in a
// JSON envelope), plain PKCS#8 or SEC1 EC private keys, and PKIX public keys.
//
// All functions are safe for concurrent use. Conclusive errors:
// [ErrUnsigned] (no signature at all), [ErrNoValidSignature] (signatures,
// none of which verifies with the given keys for this digest),
// [ErrWrongPassword].
package sign
