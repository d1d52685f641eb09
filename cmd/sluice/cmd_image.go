package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/oci/sign"
	"github.com/sluice-dev/sluice/sources"
	"github.com/sluice-dev/sluice/wasmbpf"
)

const imageUsage = `usage: sluice image COMMAND [flags]

Commands:
  build DIR|FILE.wasm -t REF     build a gadget, stage or wasm-bpf application image into the local store
  push REF                       copy an image and its signatures to its registry
  pull REF                       copy an image and its signatures into the local store
  tag SRC DST                    give a stored image another name
  list                           list the stored images
  rm REF...                      remove names (and content no other name uses)
  inspect REF                    show an image's manifests, layers and metadata
  export -o FILE REF...          write images to an OCI layout tar
  import FILE                    read images from an OCI layout tar
  login HOST -u USER             save registry credentials in the docker config
  logout HOST                    forget them
  sign --key KEY REF             sign a stored image (cosign-compatible)
  verify --key PUB REF           verify a stored image's signature
  generate-key-pair              write cosign.key and cosign.pub (cosign's formats)

REF is HOST[:PORT]/REPOSITORY[:TAG][@DIGEST]; the oci:// prefix is optional.
The store lives in --data-dir, $SLUICE_DATA_DIR, or /var/lib/sluice.
`

// imageFlags are the flags every image command shares.
type imageFlags struct {
	dataDir   string
	insecure  stringList
	plainHTTP bool
}

func (f *imageFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dataDir, "data-dir", "", "data `dir` holding the image store (default $SLUICE_DATA_DIR or /var/lib/sluice)")
	fs.Var(&f.insecure, "insecure-registry", "reach this `host[:port]` over plain HTTP (repeatable; localhost always is)")
	fs.BoolVar(&f.plainHTTP, "plain-http", false, "reach every registry over plain HTTP")
}

func (f *imageFlags) remote(stderr io.Writer, progress bool) oci.RemoteOptions {
	o := oci.RemoteOptions{Insecure: f.insecure, PlainHTTP: f.plainHTTP}
	if progress {
		o.Progress = newProgress(stderr).event
	}
	return o
}

func (f *imageFlags) open(ctx context.Context) (*oci.Store, error) {
	return oci.OpenStore(ctx, oci.DataDir(f.dataDir, ""))
}

// openRefs parses args as image references, then opens the store: how
// every command that names images starts. A bad reference is reported
// before the store is locked.
func (f *imageFlags) openRefs(ctx context.Context, args ...string) (*oci.Store, []oci.Reference, error) {
	refs := make([]oci.Reference, len(args))
	for i, a := range args {
		r, err := oci.ParseReference(a)
		if err != nil {
			return nil, nil, err
		}
		refs[i] = r
	}
	store, err := f.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	return store, refs, nil
}

type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

func cmdImage(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, imageUsage)
		return errUsage
	}
	sub, rest := args[0], args[1:]
	fs := flag.NewFlagSet("image "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var common imageFlags
	common.register(fs)
	switch sub {
	case "build":
		return imageBuild(ctx, fs, &common, rest, stdout, stderr)
	case "push", "pull":
		return imagePushPull(ctx, sub, fs, &common, rest, stdout, stderr)
	case "tag":
		return imageTag(ctx, fs, &common, rest, stdout)
	case "list", "ls":
		return imageList(ctx, fs, &common, rest, stdout)
	case "rm", "remove":
		return imageRemove(ctx, fs, &common, rest, stdout)
	case "inspect":
		return imageInspect(ctx, fs, &common, rest, stdout)
	case "export":
		return imageExport(ctx, fs, &common, rest, stdout)
	case "import":
		return imageImport(ctx, fs, &common, rest, stdout)
	case "login":
		return imageLogin(ctx, fs, &common, rest, stdin, stdout, stderr)
	case "logout":
		return imageLogout(ctx, fs, &common, rest, stdout)
	case "sign":
		return imageSign(ctx, fs, &common, rest, stdout, stderr)
	case "verify":
		return imageVerify(ctx, fs, &common, rest, stdout)
	case "generate-key-pair":
		return imageGenerateKeyPair(fs, rest, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, imageUsage)
		return nil
	}
	fmt.Fprintf(stderr, "sluice image: unknown command %q\n\n%s", sub, imageUsage)
	return errUsage
}

// positionals parses flags anywhere and wants n positional arguments (-1:
// at least one).
func positionals(fs *flag.FlagSet, args []string, n int, usage string) ([]string, error) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: sluice %s %s\n", fs.Name(), usage)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if (n >= 0 && len(pos) != n) || (n < 0 && len(pos) == 0) {
		fs.Usage()
		return nil, errUsage
	}
	return pos, nil
}

func imageBuild(ctx context.Context, fs *flag.FlagSet, common *imageFlags, args []string, stdout, stderr io.Writer) error {
	tag := fs.String("t", "", "name the image `REF` (required)")
	var archs stringList
	fs.Var(&archs, "arch", "build for these `architectures` only (comma-separated; default amd64,arm64)")
	verbose := fs.Bool("v", false, "print each build step")
	pos, err := positionals(fs, args, 1, "DIR|FILE.wasm -t REF [--arch amd64,arm64]")
	if err != nil {
		return err
	}
	if *tag == "" {
		fs.Usage()
		return errUsage
	}
	store, refs, err := common.openRefs(ctx, *tag)
	if err != nil {
		return err
	}
	defer store.Close()
	ref := refs[0]
	opts := oci.BuildOptions{Archs: archs, Headers: gadgets.Headers(), CheckProgram: checkGadgetObject, WasmBPF: wasmbpf.IsWasmBPF}
	if *verbose {
		opts.Log = stderr
	}
	res, err := oci.Build(ctx, store, pos[0], ref, opts)
	if err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(res.Inputs)) {
		fmt.Fprintf(stdout, "%s: %s\n", k, res.Inputs[k])
	}
	fmt.Fprintf(stdout, "built %s image %s@%s\n", res.Kind, ref, res.Desc.Digest)
	return nil
}

// checkGadgetObject parses an architecture's object as the agent will, and
// checks that every parameter the metadata documents exists.
func checkGadgetObject(arch string, elf []byte, md *oci.Metadata) error {
	spec, err := sources.ParseGadget(md.Name, elf, sources.ParseOptions{})
	if err != nil {
		return err
	}
	for _, name := range md.ParamNames() {
		if err := spec.CheckParams(map[string]string{name: "0"}); err != nil {
			var pe *sources.ParamError
			if errors.As(err, &pe) && pe.Reason == "no such parameter" {
				return fmt.Errorf("%s documents parameter %q, which the program does not declare (GADGET_PARAM)", oci.MetadataFile, name)
			}
		}
	}
	return nil
}

func imagePushPull(ctx context.Context, sub string, fs *flag.FlagSet, common *imageFlags, args []string, stdout, stderr io.Writer) error {
	pos, err := positionals(fs, args, 1, "REF")
	if err != nil {
		return err
	}
	store, refs, err := common.openRefs(ctx, pos[0])
	if err != nil {
		return err
	}
	defer store.Close()
	copyImage := oci.Pull
	if sub == "push" {
		copyImage = oci.Push
	}
	desc, err := copyImage(ctx, store, refs[0], common.remote(stderr, true))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%sed %s@%s\n", sub, refs[0], desc.Digest)
	return nil
}

func imageTag(ctx context.Context, fs *flag.FlagSet, common *imageFlags, args []string, stdout io.Writer) error {
	pos, err := positionals(fs, args, 2, "SRC DST")
	if err != nil {
		return err
	}
	store, refs, err := common.openRefs(ctx, pos...)
	if err != nil {
		return err
	}
	defer store.Close()
	desc, err := store.Resolve(ctx, refs[0])
	if err != nil {
		return err
	}
	if err := store.Tag(ctx, desc, refs[1]); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tagged %s@%s\n", refs[1], desc.Digest)
	return nil
}

func imageList(ctx context.Context, fs *flag.FlagSet, common *imageFlags, args []string, stdout io.Writer) error {
	output := fs.String("o", "table", "output: table or json")
	if _, err := positionals(fs, args, 0, "[-o table|json]"); err != nil {
		return err
	}
	store, err := common.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	images, err := store.List(ctx)
	if err != nil {
		return err
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if images == nil {
			images = []oci.Image{}
		}
		return enc.Encode(images)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REFERENCE\tKIND\tDIGEST\tARCHS\tSIZE\tCREATED")
	for _, img := range images {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", img.Ref, img.Kind, img.Digest.Encoded()[:12], strings.Join(img.Archs, ","), byteSize(img.Size), img.Created)
	}
	return tw.Flush()
}

func imageRemove(ctx context.Context, fs *flag.FlagSet, common *imageFlags, args []string, stdout io.Writer) error {
	pos, err := positionals(fs, args, -1, "REF...")
	if err != nil {
		return err
	}
	store, refs, err := common.openRefs(ctx, pos...)
	if err != nil {
		return err
	}
	defer store.Close()
	for _, r := range refs {
		if err := store.Remove(ctx, r); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %s\n", r)
	}
	return nil
}

func imageInspect(ctx context.Context, fs *flag.FlagSet, common *imageFlags, args []string, stdout io.Writer) error {
	output := fs.String("o", "text", "output: text or json")
	pos, err := positionals(fs, args, 1, "REF [-o text|json]")
	if err != nil {
		return err
	}
	store, refs, err := common.openRefs(ctx, pos[0])
	if err != nil {
		return err
	}
	defer store.Close()
	info, err := store.Inspect(ctx, refs[0])
	if err != nil {
		return err
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	return writeInspect(stdout, info)
}

func writeInspect(w io.Writer, info *oci.Inspection) error {
	fmt.Fprintf(w, "reference: %s\ndigest:    %s\nmedia:     %s\n", info.Ref, info.Digest, info.MediaType)
	if info.Metadata != nil {
		md := info.Metadata
		fmt.Fprintf(w, "name:      %s\n", md.Name)
		if md.Description != "" {
			fmt.Fprintf(w, "about:     %s\n", md.Description)
		}
		if docs := md.EBPFParamDocs(); len(docs) > 0 {
			fmt.Fprintln(w, "params:")
			for _, name := range md.ParamNames() {
				d := docs[name]
				fmt.Fprintf(w, "  %s (default %q): %s\n", name, d.DefaultValue, d.Description)
			}
		}
		for _, dsName := range slices.Sorted(maps.Keys(md.DataSources)) {
			fmt.Fprintf(w, "fields of %s:\n", dsName)
			ds := md.DataSources[dsName]
			for _, f := range slices.Sorted(maps.Keys(ds.Fields)) {
				fmt.Fprintf(w, "  %s: %s\n", f, ds.Fields[f].Annotations["description"])
			}
		}
	}
	for _, m := range info.Manifests {
		fmt.Fprintf(w, "manifest %s %s\n", m.Platform, m.Digest)
		for _, l := range m.Layers {
			fmt.Fprintf(w, "  layer %s %s %s\n", l.MediaType, l.Digest, byteSize(l.Size))
		}
	}
	for _, s := range info.Signatures {
		fmt.Fprintf(w, "signature (%s layout) %s\n", s.Layout, s.Manifest)
	}
	return nil
}

func imageExport(ctx context.Context, fs *flag.FlagSet, common *imageFlags, args []string, stdout io.Writer) error {
	out := fs.String("o", "", "write the tar to `FILE` (required; - for stdout)")
	pos, err := positionals(fs, args, -1, "-o FILE REF...")
	if err != nil {
		return err
	}
	if *out == "" {
		fs.Usage()
		return errUsage
	}
	store, refs, err := common.openRefs(ctx, pos...)
	if err != nil {
		return err
	}
	defer store.Close()
	if *out == "-" {
		return store.Export(ctx, stdout, refs)
	}
	tmp := *out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	err = store.Export(ctx, w, refs)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, *out)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	fmt.Fprintf(stdout, "exported %d image(s) to %s\n", len(refs), *out)
	return nil
}

func imageImport(ctx context.Context, fs *flag.FlagSet, common *imageFlags, args []string, stdout io.Writer) error {
	pos, err := positionals(fs, args, 1, "FILE")
	if err != nil {
		return err
	}
	store, err := common.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	names, err := store.Import(ctx, pos[0])
	for _, n := range names {
		fmt.Fprintf(stdout, "imported %s\n", n)
	}
	return err
}

func imageLogin(ctx context.Context, fs *flag.FlagSet, common *imageFlags, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	user := fs.String("u", "", "user `name` (required)")
	password := fs.String("p", "", "password (prefer --password-stdin: flags show in ps)")
	fromStdin := fs.Bool("password-stdin", false, "read the password from standard input")
	pos, err := positionals(fs, args, 1, "HOST -u USER [-p PASSWORD | --password-stdin]")
	if err != nil {
		return err
	}
	if *user == "" {
		fs.Usage()
		return errUsage
	}
	pw := *password
	if *fromStdin {
		b, err := io.ReadAll(io.LimitReader(stdin, 64<<10))
		if err != nil {
			return fmt.Errorf("login: read password: %w", err)
		}
		pw = strings.TrimRight(string(b), "\r\n")
	}
	if pw == "" {
		return errors.New("login: no password: pass -p or --password-stdin")
	}
	host := strings.TrimPrefix(pos[0], oci.Scheme)
	if err := oci.Login(ctx, host, auth.Credential{Username: *user, Password: pw}, common.remote(stderr, false)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "login succeeded: %s\n", host)
	return nil
}

func imageLogout(ctx context.Context, fs *flag.FlagSet, common *imageFlags, args []string, stdout io.Writer) error {
	pos, err := positionals(fs, args, 1, "HOST")
	if err != nil {
		return err
	}
	host := strings.TrimPrefix(pos[0], oci.Scheme)
	if err := oci.Logout(ctx, host, oci.RemoteOptions{}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "logged out of %s\n", host)
	return nil
}

func imageSign(ctx context.Context, fs *flag.FlagSet, common *imageFlags, args []string, stdout, stderr io.Writer) error {
	keyPath := fs.String("key", "", "private key `file` (cosign's encrypted format or PEM; password from $COSIGN_PASSWORD)")
	layout := fs.String("layout", "tag", "where the signature goes: tag (sha256-<hex>.sig, cosign's default) or referrers (OCI 1.1)")
	push := fs.Bool("push", false, "also push the signature to the image's registry")
	pos, err := positionals(fs, args, 1, "--key KEY REF")
	if err != nil {
		return err
	}
	if *keyPath == "" {
		fs.Usage()
		return errUsage
	}
	data, err := os.ReadFile(*keyPath)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	key, err := sign.LoadPrivateKey(data, []byte(os.Getenv(sign.PasswordEnv)))
	if err != nil {
		if errors.Is(err, sign.ErrWrongPassword) {
			return fmt.Errorf("sign: %w (the password is read from $%s)", err, sign.PasswordEnv)
		}
		return fmt.Errorf("sign: %w", err)
	}
	store, refs, err := common.openRefs(ctx, pos[0])
	if err != nil {
		return err
	}
	defer store.Close()
	ref := refs[0]
	desc, err := store.Resolve(ctx, ref)
	if err != nil {
		return err
	}
	sig, err := oci.SignStored(ctx, store, ref, desc, key, sign.Layout(*layout))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "signed %s@%s (%s layout, signature manifest %s)\n", ref, desc.Digest, *layout, sig.Digest)
	if *push {
		if err := oci.PushSignatures(ctx, store, ref, common.remote(stderr, false)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "pushed the signatures of %s\n", ref)
	}
	return nil
}

func imageVerify(ctx context.Context, fs *flag.FlagSet, common *imageFlags, args []string, stdout io.Writer) error {
	var keyPaths stringList
	fs.Var(&keyPaths, "key", "public key `file` (PEM; repeatable: any one may have signed)")
	pos, err := positionals(fs, args, 1, "--key PUB REF")
	if err != nil {
		return err
	}
	if len(keyPaths) == 0 {
		fs.Usage()
		return errUsage
	}
	keys, err := loadPublicKeys(keyPaths)
	if err != nil {
		return err
	}
	store, refs, err := common.openRefs(ctx, pos[0])
	if err != nil {
		return err
	}
	defer store.Close()
	ref := refs[0]
	desc, err := store.Resolve(ctx, ref)
	if err != nil {
		return err
	}
	v, err := oci.VerifyStored(ctx, store, ref, desc, keys)
	if errors.Is(err, sign.ErrUnsigned) {
		// The store holds what was pulled or built here: a signature made
		// since (cosign sign in the registry, say) arrives with a pull.
		return fmt.Errorf("verify %s: %w (this checks the local store: `sluice image pull %s` fetches signatures made in the registry)", ref, err, ref)
	}
	if err != nil {
		return fmt.Errorf("verify %s: %w", ref, err)
	}
	fmt.Fprintf(stdout, "verified %s@%s: signed by key %s for %s (%s layout)\n", ref, desc.Digest, v.Key, v.DockerReference, v.Layout)
	return nil
}

func loadPublicKeys(paths []string) ([]*ecdsa.PublicKey, error) {
	var keys []*ecdsa.PublicKey
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		k, err := sign.LoadPublicKey(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func imageGenerateKeyPair(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	prefix := fs.String("output-key-prefix", "cosign", "write `PREFIX`.key and PREFIX.pub")
	if _, err := positionals(fs, args, 0, "[--output-key-prefix PREFIX]"); err != nil {
		return err
	}
	priv, pub, err := sign.GenerateKeyPair([]byte(os.Getenv(sign.PasswordEnv)))
	if err != nil {
		return err
	}
	for _, name := range []string{*prefix + ".key", *prefix + ".pub"} {
		if _, err := os.Stat(name); err == nil {
			return fmt.Errorf("generate-key-pair: %s exists; remove it or choose another --output-key-prefix", name)
		}
	}
	if err := os.WriteFile(*prefix+".key", priv, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(*prefix+".pub", pub, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s.key (encrypted with $%s) and %s.pub\n", *prefix, sign.PasswordEnv, *prefix)
	return nil
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// imageRunFlags are the image flags of `sluice agent` and `sluice run`.
type imageRunFlags struct {
	dataDir    string
	pullPolicy string
}

func (f *imageRunFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dataDir, "data-dir", "", "data `dir` of the image store (default $SLUICE_DATA_DIR, else the config's data_dir)")
	fs.StringVar(&f.pullPolicy, "pull", "", "pull policy for image references: always, missing or never (default the config's, missing)")
}

func (f *imageRunFlags) fetchOptions(stderr io.Writer) agent.FetchOptions {
	o := agent.FetchOptions{DataDir: f.dataDir, PullPolicy: f.pullPolicy}
	if isTerminal(stderr) {
		o.Progress = newProgress(stderr).event
	}
	return o
}
