package workloads

import (
	"context"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// Runtime is a container runtime's API.
type Runtime interface {
	// Endpoint says where the API is (a socket path), for messages.
	Endpoint() string
	// Name asks the runtime what it is: "docker", "podman", ...
	Name(ctx context.Context) (string, error)
	// Containers lists the containers that have processes.
	Containers(ctx context.Context) ([]RuntimeContainer, error)
	// Inspect returns one container by id; ErrNoContainer when unknown.
	Inspect(ctx context.Context, id string) (RuntimeContainer, error)
	// Watch calls changed with the container's id after each container
	// lifecycle event until ctx is done (nil) or the stream breaks (the
	// error).
	Watch(ctx context.Context, changed func(id string)) error
}

// RuntimeContainer is a container as its runtime describes it.
type RuntimeContainer struct {
	ID, Name, Image string
	Labels          map[string]string
	PID             int // its first process, as the host sees it
}

// Labels the Kubernetes container runtimes (CRI) put on the containers
// they create for pods.
const (
	labelPodNamespace = "io.kubernetes.pod.namespace"
	labelPodName      = "io.kubernetes.pod.name"
	labelContainer    = "io.kubernetes.container.name"
)

// Event fields the Enricher adds, in this order; the k8s ones only when
// the runtime's labels carry them.
const (
	FieldContainerID      = "container.id"
	FieldContainerName    = "container.name"
	FieldContainerImage   = "container.image"
	FieldContainerRuntime = "container.runtime"
	FieldK8sNamespace     = "k8s.namespace"
	FieldK8sPod           = "k8s.pod"
	FieldK8sContainer     = "k8s.container"
)

// Container is a resolved container. It is immutable once published.
type Container struct {
	ID, Name, Image string
	Runtime         string // "docker", "podman", ...
	// Kubernetes identity, from the runtime's labels; "" when absent.
	K8sNamespace, K8sPod, K8sContainer string
	Labels                             map[string]string
	PID                                int
	MntNS                              uint64 // of its first process
	CgroupID                           uint64 // cgroup v2 id of its first process; 0 when unknown

	// fields is the msgpack encoding of the keys and values the Enricher
	// appends, nfields their number.
	fields  []byte
	nfields int
}

func newContainer(rc RuntimeContainer, runtime string) *Container {
	c := &Container{
		ID: rc.ID, Name: rc.Name, Image: rc.Image, Runtime: runtime,
		Labels: rc.Labels, PID: rc.PID,
		K8sNamespace: rc.Labels[labelPodNamespace],
		K8sPod:       rc.Labels[labelPodName],
		K8sContainer: rc.Labels[labelContainer],
	}
	add := func(k, v string) {
		c.fields = codec.AppendString(c.fields, k)
		c.fields = codec.AppendString(c.fields, v)
		c.nfields++
	}
	add(FieldContainerID, c.ID)
	add(FieldContainerName, c.Name)
	add(FieldContainerImage, c.Image)
	add(FieldContainerRuntime, c.Runtime)
	if c.K8sNamespace != "" || c.K8sPod != "" {
		add(FieldK8sNamespace, c.K8sNamespace)
		add(FieldK8sPod, c.K8sPod)
		add(FieldK8sContainer, c.K8sContainer)
	}
	return c
}
