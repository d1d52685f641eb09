// Package oci stores, builds, moves and reads sluice's OCI artifacts: gadget
// images (Inspektor Gadget's layout: an index with one manifest per
// architecture, the metadata as config, an eBPF layer and at most one Wasm
// layer) and stage images (a Wasm module, in the CNCF Wasm layout or with the
// gadget Wasm layer type).
//
// [Store] is the local store, an OCI image layout under the agent's data dir;
// everything that runs is read from it, so an agent works offline. [Build]
// turns a gadget folder into an image in the store, reproducibly. [Pull] and
// [Push] copy images (and their cosign signatures) between the store and a
// registry. [Resolver] applies the agent's image policy: pull policy,
// allow-list and signature verification, in that order.
//
// Ownership and concurrency: a Store holds an exclusive advisory file lock
// on its directory for as long as it is open (readers too), so a CLI
// command and an agent never interleave writes to index.json; within one
// process a Store is safe for concurrent use.
//
// Conclusive errors: [ErrNotFound] (no such image in the store or registry),
// [ErrPlatform] (the image has no manifest for the wanted architecture),
// [*PolicyError] (the allow-list refused an image) and digest mismatches,
// which oras reports when content does not hash to its descriptor, are not
// retried.
package oci
