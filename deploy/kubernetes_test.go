package deploy

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/sluice-dev/sluice/config"
)

// decodeManifests decodes a multi-document YAML file strictly into the
// Kubernetes API types its kinds name: an unknown field, a misspelt one or
// a value of the wrong type fails, as the API server would refuse it.
func decodeManifests(t *testing.T, path string) []any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var objs []any
	for i, doc := range bytes.Split(data, []byte("\n---\n")) {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("%s document %d: %v", path, i, err)
		}
		var obj any
		switch meta.APIVersion + "/" + meta.Kind {
		case "v1/ConfigMap":
			obj = &corev1.ConfigMap{}
		case "apps/v1/DaemonSet":
			obj = &appsv1.DaemonSet{}
		default:
			t.Fatalf("%s document %d: unexpected kind %s %s", path, i, meta.APIVersion, meta.Kind)
		}
		// As the API server decodes: case-sensitive field names, no
		// unknown or duplicate fields.
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			t.Fatalf("%s document %d (%s): %v", path, i, meta.Kind, err)
		}
		strictErrs, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
		if err != nil {
			t.Fatalf("%s document %d (%s): %v", path, i, meta.Kind, err)
		}
		for _, e := range strictErrs {
			t.Errorf("%s document %d (%s): %v", path, i, meta.Kind, e)
		}
		objs = append(objs, obj)
	}
	return objs
}

// TestKubernetesManifest checks deploy/kubernetes/sluice.yaml against the
// Kubernetes API types and the rules the API server applies that matter
// here, and what sluice needs of it: host PID, BTF, bpffs and tracefs, the
// capabilities, the NATS URL from a Secret, and a config that parses.
func TestKubernetesManifest(t *testing.T) {
	var ds *appsv1.DaemonSet
	var cm *corev1.ConfigMap
	for _, o := range decodeManifests(t, "kubernetes/sluice.yaml") {
		switch o := o.(type) {
		case *appsv1.DaemonSet:
			ds = o
		case *corev1.ConfigMap:
			cm = o
		}
	}
	if ds == nil || cm == nil {
		t.Fatal("want a DaemonSet and a ConfigMap")
	}
	check := func(what string, errs []string) {
		for _, e := range errs {
			t.Errorf("%s: %s", what, e)
		}
	}
	for _, n := range []string{ds.Name, ds.Namespace, cm.Name, cm.Namespace} {
		check("name "+n, validation.IsDNS1123Subdomain(n))
	}
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("the selector %v does not select the pod template's labels %v (%v)", ds.Spec.Selector, ds.Spec.Template.Labels, err)
	}
	pod := ds.Spec.Template.Spec
	if !pod.HostPID {
		t.Error("hostPID is off: events would name the pod's processes only")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	check("container name", validation.IsDNS1123Label(c.Name))

	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		check("volume "+v.Name, validation.IsDNS1123Label(v.Name))
		volumes[v.Name] = v
	}
	mounts := map[string]string{} // mount path -> host path
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			t.Errorf("volume mount %s names no volume", m.Name)
			continue
		}
		if v.HostPath != nil {
			mounts[m.MountPath] = v.HostPath.Path
		} else {
			mounts[m.MountPath] = ""
		}
	}
	for _, p := range []string{"/sys/kernel/btf", "/sys/fs/bpf", "/sys/kernel/tracing"} {
		if mounts[p] != p {
			t.Errorf("the host's %s is not mounted at %s", p, p)
		}
	}
	for _, p := range c.Ports {
		check("port "+p.Name, validation.IsValidPortName(p.Name))
	}
	for _, p := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/livez"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != c.Ports[0].Name {
			t.Errorf("the %s probe does not ask the metrics port's %s: %+v", p.what, p.path, p.probe)
		}
	}

	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("no securityContext.capabilities")
	}
	for _, capName := range []corev1.Capability{"BPF", "PERFMON"} {
		if !slices.Contains(sc.Capabilities.Add, capName) {
			t.Errorf("capability %s is not added", capName)
		}
	}
	if !slices.Contains(sc.Capabilities.Drop, "ALL") || (sc.Privileged != nil && *sc.Privileged) {
		t.Error("the container should drop every other capability and not be privileged")
	}

	var natsURL *corev1.EnvVar
	for i, e := range c.Env {
		if e.Name == "NATS_URL" {
			natsURL = &c.Env[i]
		}
	}
	if natsURL == nil || natsURL.Value != "" || natsURL.ValueFrom == nil || natsURL.ValueFrom.SecretKeyRef == nil {
		t.Fatalf("NATS_URL does not come from a Secret: %+v", natsURL)
	}
	secret := natsURL.ValueFrom.SecretKeyRef.Name
	credsFromSecret := false
	for _, v := range pod.Volumes {
		if v.Secret != nil && v.Secret.SecretName == secret {
			credsFromSecret = true
		}
	}
	if !credsFromSecret {
		t.Errorf("the NATS credentials are not mounted from Secret %s", secret)
	}

	// The config in the ConfigMap is one sluice accepts, where the
	// DaemonSet mounts it.
	if mounts["/etc/sluice"] != "" || volumes["config"].ConfigMap == nil || volumes["config"].ConfigMap.Name != cm.Name {
		t.Errorf("ConfigMap %s is not mounted at /etc/sluice", cm.Name)
	}
	if !slices.Equal(c.Args, []string{"agent", "--config", "/etc/sluice/sluice.hcl"}) {
		t.Errorf("args %q do not run the agent on the ConfigMap's sluice.hcl", c.Args)
	}
	hcl, ok := cm.Data["sluice.hcl"]
	if !ok {
		t.Fatal("the ConfigMap has no sluice.hcl")
	}
	// /host/etc is the node's /etc in the pod; here, this machine's.
	hcl = strings.ReplaceAll(hcl, "/host/etc/", "/etc/")
	t.Setenv("NODE_NAME", "node-1")
	t.Setenv("NATS_URL", "nats://nats.nats.svc:4222")
	f, diags := config.Parse("sluice.hcl", []byte(hcl))
	if diags.HasErrors() {
		t.Fatalf("the ConfigMap's sluice.hcl: %v", diags)
	}
	if f.Agent.Name != "node-1" || len(f.Sinks) != 1 || f.Sinks[0].NATS == nil || f.Sinks[0].NATS.URL != "nats://nats.nats.svc:4222" {
		t.Errorf("the config does not take its name and NATS URL from the environment: %+v", f.Agent)
	}
	if got := fmt.Sprint(f.Sinks[0].NATS.CredsFile); !strings.HasPrefix(got, "/etc/sluice-nats/") || mounts["/etc/sluice-nats"] != "" {
		t.Errorf("the creds file %s is not where the Secret is mounted", got)
	}
}
