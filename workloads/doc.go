// Package workloads tells which container, and which Kubernetes pod, the
// process behind an event runs in.
//
// A [Resolver] maps mount namespaces (the gadget_mntns_id every built-in
// gadget reports) to [Container]s, through container runtimes' APIs: the
// Docker Engine API, which Docker serves and Podman serves too
// ([DockerAPI]). It lists the runtimes' containers, reads each one's
// mount namespace and cgroup from /proc, and follows their event streams
// to learn about containers as they start and stop. A namespace no listed
// container owns is looked up through a process in it: its cgroup path
// names the container (libpod-<id>, docker-<id>.scope, cri-containerd-<id>,
// crio-<id>), which is then inspected, so a process that unshared its
// mount namespace inside a container is still attributed to it.
//
// Lookups never block: [Resolver.Lookup] reads an immutable snapshot. An
// unknown namespace is queued with [Resolver.Request] and resolved by the
// resolver's own goroutine, which answers every queued namespace in one
// round (one list of the runtimes' containers at most), at most once per
// MinInterval, and remembers namespaces that belong to no container until
// a container starts or the next resync. The [Enricher] stage adds the
// container fields to events, making a batch with unknown namespaces wait
// at most its bound for the round that answers them; what is still
// unknown goes out without, counted.
//
// Ownership and concurrency: Run owns the resolver's goroutines (the
// refresher and one watcher per runtime) and returns when its context is
// cancelled. Lookup, Request, Containers and Subscribe are safe for
// concurrent use; subscribers are called from the refresher goroutine.
// Runtime errors are logged, counted and retried; they never fail Run.
package workloads
