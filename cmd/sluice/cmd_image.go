package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/sluice-dev/sluice/agent"
	"github.com/sluice-dev/sluice/gadgets"
	"github.com/sluice-dev/sluice/internal/termsafe"
	"github.com/sluice-dev/sluice/oci"
	"github.com/sluice-dev/sluice/oci/sign"
	"github.com/sluice-dev/sluice/sources"
	"github.com/sluice-dev/sluice/wasmbpf"
)

// imageFlags are the flags every image command shares.
type imageFlags struct {
	dataDir   string
	insecure  []string
	plainHTTP bool
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

func newImageCommand() *cobra.Command {
	var common imageFlags
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Build, push, pull, sign and verify gadget, stage and wasm-bpf images",
		Long: `Build, push, pull, sign and verify gadget, stage and wasm-bpf application images (OCI artifacts), kept
in a local store that the agent reads.

REF is HOST[:PORT]/REPOSITORY[:TAG][@DIGEST]; the oci:// prefix is optional.
The store lives in --data-dir, $SLUICE_DATA_DIR, or /var/lib/sluice.`,
		Example: `  sluice image build gadgets/trace_exec -t localhost:5000/gadgets/trace_exec:v1
  sluice image sign --key cosign.key localhost:5000/gadgets/trace_exec:v1
  sluice image push localhost:5000/gadgets/trace_exec:v1`,
		Args: subcommandArgs,
		RunE: showHelp,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&common.dataDir, "data-dir", "", "data `dir` holding the image store (default $SLUICE_DATA_DIR or /var/lib/sluice)")
	pf.StringSliceVar(&common.insecure, "insecure-registry", nil, "reach this `host[:port]` over plain HTTP (repeatable; localhost always is)")
	pf.BoolVar(&common.plainHTTP, "plain-http", false, "reach every registry over plain HTTP")
	cmd.MarkPersistentFlagDirname("data-dir")
	cmd.AddCommand(
		imageBuildCommand(&common),
		imagePushPullCommand(&common, "push"),
		imagePushPullCommand(&common, "pull"),
		imageTagCommand(&common),
		imageListCommand(&common),
		imageRemoveCommand(&common),
		imageInspectCommand(&common),
		imageExportCommand(&common),
		imageImportCommand(&common),
		imageLoginCommand(&common),
		imageLogoutCommand(),
		imageSignCommand(&common),
		imageVerifyCommand(&common),
		imageGenerateKeyPairCommand(),
		imageSignBlobCommand(),
		imageVerifyBlobCommand(),
	)
	return cmd
}

// completeStoredImages offers the names in the local store.
func completeStoredImages(common *imageFlags) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		store, err := common.open(cmd.Context())
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer store.Close()
		images, err := store.List(cmd.Context())
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []cobra.Completion
		for _, img := range images {
			names = append(names, cobra.CompletionWithDesc(img.Ref, img.Kind))
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

func imageBuildCommand(common *imageFlags) *cobra.Command {
	var tag string
	var archs []string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "build DIR|FILE.wasm -t REF",
		Short: "Build a gadget, stage or wasm-bpf application image into the local store",
		Long: `Build a gadget image from a gadget directory (its C source, compiled with
clang-19 for each architecture, and its gadget.yaml), or a stage image from a
Wasm module, into the local store. A Wasm module that imports the wasm_bpf host
interface builds a wasm-bpf application image, in eunomia-bpf's layout.`,
		Example: `  sluice image build gadgets/trace_exec -t localhost:5000/gadgets/trace_exec:v1
  sluice image build ./my_gadget -t registry.example.com/gadgets/my:v2 --arch amd64
  sluice image build filter.wasm -t localhost:5000/stages/filter:v1
  sluice image build execsnoop.wasm -t localhost:5000/apps/execsnoop:v1`,
		Args: exactArgs("DIR|FILE.wasm"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "tag"); err != nil {
				return err
			}
			ctx, stdout := cmd.Context(), cmd.OutOrStdout()
			store, refs, err := common.openRefs(ctx, tag)
			if err != nil {
				return err
			}
			defer store.Close()
			ref := refs[0]
			opts := oci.BuildOptions{Archs: archs, Headers: gadgets.Headers(), CheckProgram: checkGadgetObject, WasmBPF: wasmbpf.IsWasmBPF}
			if verbose {
				opts.Log = cmd.ErrOrStderr()
			}
			res, err := oci.Build(ctx, store, args[0], ref, opts)
			if err != nil {
				return err
			}
			for _, k := range slices.Sorted(maps.Keys(res.Inputs)) {
				fmt.Fprintf(stdout, "%s: %s\n", k, res.Inputs[k])
			}
			fmt.Fprintf(stdout, "built %s image %s@%s\n", res.Kind, ref, res.Desc.Digest)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&tag, "tag", "t", "", "name the image `REF` (required)")
	fs.StringSliceVar(&archs, "arch", nil, "build for these `architectures` only (comma-separated; default amd64,arm64)")
	fs.BoolVarP(&verbose, "verbose", "v", false, "print each build step")
	cmd.RegisterFlagCompletionFunc("arch", cobra.FixedCompletions([]string{"amd64", "arm64"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("tag", cobra.NoFileCompletions)
	return cmd
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
			if errors.Is(err, sources.ErrUnknownParam) {
				return fmt.Errorf("%s documents parameter %q, which the program does not declare (GADGET_PARAM)", oci.MetadataFile, name)
			}
		}
	}
	return nil
}

func imagePushPullCommand(common *imageFlags, sub string) *cobra.Command {
	cmd := &cobra.Command{
		Use:     sub + " REF",
		Short:   "Copy an image and its signatures to its registry",
		Example: "  sluice image push localhost:5000/gadgets/trace_exec:v1",
		Args:    exactArgs("REF"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
			store, refs, err := common.openRefs(ctx, args[0])
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
		},
	}
	if sub == "push" {
		cmd.ValidArgsFunction = completeStoredImages(common)
	} else {
		cmd.Short = "Copy an image and its signatures into the local store"
		cmd.Example = "  sluice image pull ghcr.io/example/gadgets/trace_exec:v1\n  sluice image pull --insecure-registry registry.lan:5000 registry.lan:5000/gadgets/x@sha256:..."
		cmd.ValidArgsFunction = cobra.NoFileCompletions
	}
	return cmd
}

func imageTagCommand(common *imageFlags) *cobra.Command {
	return &cobra.Command{
		Use:               "tag SRC DST",
		Short:             "Give a stored image another name",
		Example:           "  sluice image tag localhost:5000/gadgets/trace_exec:v1 registry.example.com/gadgets/trace_exec:v1",
		Args:              exactArgs("SRC", "DST"),
		ValidArgsFunction: completeStoredImages(common),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			store, refs, err := common.openRefs(ctx, args...)
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
			fmt.Fprintf(cmd.OutOrStdout(), "tagged %s@%s\n", refs[1], desc.Digest)
			return nil
		},
	}
}

func imageListCommand(common *imageFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the stored images",
		Example: "  sluice image list\n  sluice image ls -o json | jq -r '.[].ref'",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stdout := cmd.Context(), cmd.OutOrStdout()
			store, err := common.open(ctx)
			if err != nil {
				return err
			}
			defer store.Close()
			images, err := store.List(ctx)
			if err != nil {
				return err
			}
			if output == "json" {
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
				// Names, architectures and dates come from image content:
				// escape what could act on the terminal (a tab would break
				// the columns).
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", esc(img.Ref), esc(img.Kind), img.Digest.Encoded()[:12], esc(strings.Join(img.Archs, ",")), byteSize(img.Size), esc(img.Created))
			}
			return tw.Flush()
		},
	}
	enumVarP(cmd, cmd.Flags(), &output, "output", "o", "table", []string{"table", "json"}, "output format")
	return cmd
}

func imageRemoveCommand(common *imageFlags) *cobra.Command {
	return &cobra.Command{
		Use:               "rm REF...",
		Aliases:           []string{"remove"},
		Short:             "Remove names from the store (and content no other name uses)",
		Example:           "  sluice image rm localhost:5000/gadgets/trace_exec:v1",
		Args:              minArgs("REF"),
		ValidArgsFunction: completeStoredImages(common),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			store, refs, err := common.openRefs(ctx, args...)
			if err != nil {
				return err
			}
			defer store.Close()
			for _, r := range refs {
				if err := store.Remove(ctx, r); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", r)
			}
			return nil
		},
	}
}

func imageInspectCommand(common *imageFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:               "inspect REF",
		Short:             "Show an image's manifests, layers, metadata and signatures",
		Example:           "  sluice image inspect localhost:5000/gadgets/trace_exec:v1\n  sluice image inspect -o json localhost:5000/gadgets/trace_exec:v1",
		Args:              exactArgs("REF"),
		ValidArgsFunction: completeStoredImages(common),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stdout := cmd.Context(), cmd.OutOrStdout()
			store, refs, err := common.openRefs(ctx, args[0])
			if err != nil {
				return err
			}
			defer store.Close()
			info, err := store.Inspect(ctx, refs[0])
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			return writeInspect(stdout, info)
		},
	}
	enumVarP(cmd, cmd.Flags(), &output, "output", "o", "text", []string{"text", "json"}, "output format")
	return cmd
}

// writeInspect prints an inspection. Everything but digests and sizes comes
// from the image (annotations, metadata, media types) and is escaped
// (termsafe): whoever built the image chose it.
func writeInspect(w io.Writer, info *oci.Inspection) error {
	fmt.Fprintf(w, "reference: %s\ndigest:    %s\nmedia:     %s\n", esc(info.Ref), info.Digest, esc(info.MediaType))
	if info.Metadata != nil {
		md := info.Metadata
		fmt.Fprintf(w, "name:      %s\n", esc(md.Name))
		if md.Description != "" {
			fmt.Fprintf(w, "about:     %s\n", esc(md.Description))
		}
		if docs := md.EBPFParamDocs(); len(docs) > 0 {
			fmt.Fprintln(w, "params:")
			for _, name := range md.ParamNames() {
				d := docs[name]
				fmt.Fprintf(w, "  %s (default %s): %s\n", esc(name), esc(strconv.Quote(d.DefaultValue)), esc(d.Description))
			}
		}
		for _, dsName := range slices.Sorted(maps.Keys(md.DataSources)) {
			fmt.Fprintf(w, "fields of %s:\n", esc(dsName))
			ds := md.DataSources[dsName]
			for _, f := range slices.Sorted(maps.Keys(ds.Fields)) {
				fmt.Fprintf(w, "  %s: %s\n", esc(f), esc(ds.Fields[f].Annotations["description"]))
			}
		}
	}
	for _, m := range info.Manifests {
		fmt.Fprintf(w, "manifest %s %s\n", esc(m.Platform), m.Digest)
		for _, l := range m.Layers {
			fmt.Fprintf(w, "  layer %s %s %s\n", esc(l.MediaType), l.Digest, byteSize(l.Size))
		}
	}
	for _, s := range info.Signatures {
		fmt.Fprintf(w, "signature (%s layout) %s\n", esc(string(s.Layout)), s.Manifest)
	}
	return nil
}

// esc escapes text from an image for the terminal.
func esc(s string) string { return termsafe.String(s) }

func imageExportCommand(common *imageFlags) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:               "export -o FILE REF...",
		Short:             "Write images (with their signatures) to an OCI layout tar",
		Example:           "  sluice image export -o gadgets.tar localhost:5000/gadgets/trace_exec:v1\n  sluice image export -o - localhost:5000/gadgets/trace_exec:v1 | ssh host sluice image import /dev/stdin",
		Args:              minArgs("REF"),
		ValidArgsFunction: completeStoredImages(common),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "output"); err != nil {
				return err
			}
			ctx, stdout := cmd.Context(), cmd.OutOrStdout()
			store, refs, err := common.openRefs(ctx, args...)
			if err != nil {
				return err
			}
			defer store.Close()
			if out == "-" {
				return store.Export(ctx, stdout, refs)
			}
			return exportFile(ctx, store, out, refs, stdout)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the tar to `FILE` (required; - for stdout)")
	cmd.MarkFlagFilename("output", "tar")
	return cmd
}

// exportFile writes the tar next to its final name and renames it, so that
// an interrupted export leaves no truncated file under that name.
func exportFile(ctx context.Context, store *oci.Store, out string, refs []oci.Reference, stdout io.Writer) error {
	tmp := out + ".tmp"
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
		err = os.Rename(tmp, out)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	fmt.Fprintf(stdout, "exported %d image(s) to %s\n", len(refs), out)
	return nil
}

func imageImportCommand(common *imageFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "import FILE",
		Short:   "Read images from an OCI layout tar into the store",
		Example: "  sluice image import gadgets.tar",
		Args:    exactArgs("FILE"),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return []cobra.Completion{"tar"}, cobra.ShellCompDirectiveFilterFileExt
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			store, err := common.open(ctx)
			if err != nil {
				return err
			}
			defer store.Close()
			names, err := store.Import(ctx, args[0])
			for _, n := range names {
				fmt.Fprintf(cmd.OutOrStdout(), "imported %s\n", n)
			}
			return err
		},
	}
}

func imageLoginCommand(common *imageFlags) *cobra.Command {
	var user, password string
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "login HOST -u USER",
		Short: "Save registry credentials in the docker config",
		Long: `Check credentials against a registry and save them in the docker config
($DOCKER_CONFIG/config.json, or ~/.docker/config.json), where sluice, docker,
podman, oras and cosign all find them.`,
		Example: `  echo "$TOKEN" | sluice image login ghcr.io -u bot --password-stdin
  sluice image login localhost:5000 -u bob -p hunter2`,
		Args:              exactArgs("HOST"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "username"); err != nil {
				return err
			}
			if err := exclusiveFlags(cmd, "password", "password-stdin"); err != nil {
				return err
			}
			pw := password
			if fromStdin {
				b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<10))
				if err != nil {
					return fmt.Errorf("login: read password: %w", err)
				}
				pw = strings.TrimRight(string(b), "\r\n")
			}
			if pw == "" {
				return usageErrorf(cmd, "no password: pass --password or --password-stdin")
			}
			host := strings.TrimPrefix(args[0], oci.Scheme)
			if err := oci.Login(cmd.Context(), host, auth.Credential{Username: user, Password: pw}, common.remote(cmd.ErrOrStderr(), false)); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "login succeeded: %s\n", host)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&user, "username", "u", "", "user `name` (required)")
	fs.StringVarP(&password, "password", "p", "", "password (prefer --password-stdin: flags show in ps)")
	fs.BoolVar(&fromStdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

func imageLogoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "logout HOST",
		Short:             "Forget a registry's credentials",
		Example:           "  sluice image logout ghcr.io",
		Args:              exactArgs("HOST"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			host := strings.TrimPrefix(args[0], oci.Scheme)
			if err := oci.Logout(cmd.Context(), host, oci.RemoteOptions{}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "logged out of %s\n", host)
			return nil
		},
	}
}

func imageSignCommand(common *imageFlags) *cobra.Command {
	var keyPath, layout string
	var push bool
	cmd := &cobra.Command{
		Use:   "sign --key KEY REF",
		Short: "Sign a stored image (cosign-compatible)",
		Long: `Sign a stored image with a cosign-compatible signature, stored next to it (and
pushed with it). The key is cosign's encrypted format or PEM; its password is
read from $COSIGN_PASSWORD.`,
		Example: `  COSIGN_PASSWORD=... sluice image sign --key cosign.key localhost:5000/gadgets/trace_exec:v1 --push
  sluice image sign --key cosign.key --layout referrers localhost:5000/gadgets/trace_exec:v1`,
		Args:              exactArgs("REF"),
		ValidArgsFunction: completeStoredImages(common),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "key"); err != nil {
				return err
			}
			key, err := loadPrivateKey(keyPath)
			if err != nil {
				return fmt.Errorf("sign: %w", err)
			}
			ctx, stdout := cmd.Context(), cmd.OutOrStdout()
			store, refs, err := common.openRefs(ctx, args[0])
			if err != nil {
				return err
			}
			defer store.Close()
			ref := refs[0]
			desc, err := store.Resolve(ctx, ref)
			if err != nil {
				return err
			}
			sig, err := oci.SignStored(ctx, store, ref, desc, key, sign.Layout(layout))
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "signed %s@%s (%s layout, signature manifest %s)\n", ref, desc.Digest, layout, sig.Digest)
			if push {
				if err := oci.PushSignatures(ctx, store, ref, common.remote(cmd.ErrOrStderr(), false)); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "pushed the signatures of %s\n", ref)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&keyPath, "key", "", "private key `file` (cosign's encrypted format or PEM; password from $COSIGN_PASSWORD)")
	enumVarP(cmd, fs, &layout, "layout", "", "tag", []string{"tag", "referrers"}, "where the signature goes: tag (sha256-<hex>.sig, cosign's default) or referrers (OCI 1.1)")
	fs.BoolVar(&push, "push", false, "also push the signature to the image's registry")
	cmd.MarkFlagFilename("key", "key", "pem")
	return cmd
}

func imageVerifyCommand(common *imageFlags) *cobra.Command {
	var keyPaths []string
	cmd := &cobra.Command{
		Use:   "verify --key PUB REF",
		Short: "Verify a stored image's signature",
		Long: `Verify a stored image's cosign-compatible signature against one or more public
keys. This checks the local store: 'sluice image pull' fetches signatures made
in the registry since.`,
		Example: `  sluice image verify --key cosign.pub localhost:5000/gadgets/trace_exec:v1
  sluice image verify --key old.pub --key new.pub localhost:5000/gadgets/trace_exec:v1`,
		Args:              exactArgs("REF"),
		ValidArgsFunction: completeStoredImages(common),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "key"); err != nil {
				return err
			}
			keys, err := loadPublicKeys(keyPaths)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			store, refs, err := common.openRefs(ctx, args[0])
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
			fmt.Fprintf(cmd.OutOrStdout(), "verified %s@%s: signed by key %s for %s (%s layout)\n", ref, desc.Digest, v.Key, v.DockerReference, v.Layout)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&keyPaths, "key", nil, "public key `file` (PEM; repeatable: any one may have signed)")
	cmd.MarkFlagFilename("key", "pub", "pem")
	return cmd
}

func imageSignBlobCommand() *cobra.Command {
	var keyPath, output string
	cmd := &cobra.Command{
		Use:   "sign-blob --key KEY FILE",
		Short: "Sign a file as cosign sign-blob does",
		Long: `Sign a file (a release's SHA256SUMS, say) as cosign sign-blob does: ECDSA over the
file's SHA-256, base64. cosign verify-blob and sluice image verify-blob check it.
The key's password is read from $COSIGN_PASSWORD.`,
		Example: `  sluice image sign-blob --key cosign.key --output-signature SHA256SUMS.sig SHA256SUMS
  cosign verify-blob --key cosign.pub --signature SHA256SUMS.sig --insecure-ignore-tlog SHA256SUMS`,
		Args: exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "key"); err != nil {
				return err
			}
			key, err := loadPrivateKey(keyPath)
			if err != nil {
				return fmt.Errorf("sign-blob: %w", err)
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("sign-blob: %w", err)
			}
			sig, err := sign.SignPayload(key, data)
			if err != nil {
				return err
			}
			if output == "" {
				_, err = fmt.Fprintln(cmd.OutOrStdout(), sig)
				return err
			}
			return os.WriteFile(output, []byte(sig), 0o644)
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "private key `file` (cosign's encrypted format or PEM; password from $COSIGN_PASSWORD)")
	cmd.Flags().StringVar(&output, "output-signature", "", "write the signature to `FILE` (default: stdout)")
	cmd.MarkFlagFilename("key", "key", "pem")
	return cmd
}

func imageVerifyBlobCommand() *cobra.Command {
	var keyPaths []string
	var sigPath string
	cmd := &cobra.Command{
		Use:     "verify-blob --key PUB --signature SIG FILE",
		Short:   "Verify a file's cosign sign-blob signature",
		Example: `  sluice image verify-blob --key cosign.pub --signature SHA256SUMS.sig SHA256SUMS && sha256sum -c SHA256SUMS`,
		Args:    exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "key", "signature"); err != nil {
				return err
			}
			keys, err := loadPublicKeys(keyPaths)
			if err != nil {
				return err
			}
			sig, err := os.ReadFile(sigPath)
			if err != nil {
				return fmt.Errorf("verify-blob: %w", err)
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("verify-blob: %w", err)
			}
			for _, k := range keys {
				if sign.VerifyPayload(k, data, strings.TrimSpace(string(sig))) {
					fmt.Fprintf(cmd.OutOrStdout(), "verified %s: signed by key %s\n", args[0], sign.Fingerprint(k))
					return nil
				}
			}
			return fmt.Errorf("verify-blob %s: the signature in %s is not by any of the keys given", args[0], sigPath)
		},
	}
	cmd.Flags().StringArrayVar(&keyPaths, "key", nil, "public key `file` (PEM; repeatable: any one may have signed)")
	cmd.Flags().StringVar(&sigPath, "signature", "", "the signature `file` (base64, as cosign sign-blob writes it)")
	cmd.MarkFlagFilename("key", "pub", "pem")
	return cmd
}

// loadPrivateKey reads a signing key, its password from $COSIGN_PASSWORD.
func loadPrivateKey(path string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := sign.LoadPrivateKey(data, []byte(os.Getenv(sign.PasswordEnv)))
	if errors.Is(err, sign.ErrWrongPassword) {
		return nil, fmt.Errorf("%w (the password is read from $%s)", err, sign.PasswordEnv)
	}
	return key, err
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

func imageGenerateKeyPairCommand() *cobra.Command {
	var prefix string
	var noPassword bool
	cmd := &cobra.Command{
		Use:   "generate-key-pair",
		Short: "Write cosign.key and cosign.pub (cosign's formats)",
		Long: `Write a new ECDSA P-256 key pair in cosign's formats: PREFIX.key, encrypted
with a password, and PREFIX.pub.

The password is $COSIGN_PASSWORD when set; otherwise it is asked on the
terminal, twice, as cosign does. Without a terminal and without
$COSIGN_PASSWORD the command refuses, rather than write a key anyone who
reads the file can use; --no-password writes such a key on purpose.`,
		Example: `  sluice image generate-key-pair                        # asks for the password
  COSIGN_PASSWORD=... sluice image generate-key-pair --output-key-prefix /etc/sluice/release
  sluice image generate-key-pair --no-password --output-key-prefix ci   # a throw-away key`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, name := range []string{prefix + ".key", prefix + ".pub"} {
				if _, err := os.Stat(name); err == nil {
					return fmt.Errorf("generate-key-pair: %s exists; remove it or choose another --output-key-prefix", name)
				}
			}
			password, err := keyPassword(cmd, noPassword)
			if err != nil {
				return err
			}
			priv, pub, err := sign.GenerateKeyPair(password)
			if err != nil {
				return err
			}
			if err := os.WriteFile(prefix+".key", priv, 0o600); err != nil {
				return err
			}
			if err := os.WriteFile(prefix+".pub", pub, 0o644); err != nil {
				return err
			}
			how := "encrypted with its password"
			if len(password) == 0 {
				how = "NOT protected by a password"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s.key (%s) and %s.pub\n", prefix, how, prefix)
			return nil
		},
	}
	cmd.Flags().StringVar(&prefix, "output-key-prefix", "cosign", "write `PREFIX`.key and PREFIX.pub")
	cmd.Flags().BoolVar(&noPassword, "no-password", false, "write a private key without a password (anyone who can read it can sign)")
	return cmd
}

// keyPassword is the password of a new private key: $COSIGN_PASSWORD, or
// asked twice on the terminal; none only with --no-password.
func keyPassword(cmd *cobra.Command, noPassword bool) ([]byte, error) {
	if noPassword {
		if os.Getenv(sign.PasswordEnv) != "" {
			return nil, usageErrorf(cmd, "--no-password, but $%s is set", sign.PasswordEnv)
		}
		return nil, nil
	}
	if pw, ok := os.LookupEnv(sign.PasswordEnv); ok {
		if pw == "" {
			return nil, usageErrorf(cmd, "$%s is empty: pass --no-password for a key without a password", sign.PasswordEnv)
		}
		return []byte(pw), nil
	}
	in, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return nil, usageErrorf(cmd, "no password for the private key: set $%s, run on a terminal to be asked, or pass --no-password", sign.PasswordEnv)
	}
	w := cmd.ErrOrStderr()
	ask := func(prompt string) ([]byte, error) {
		pw, err := readPassword(int(in.Fd()), w, prompt)
		fmt.Fprintln(w)
		if err != nil {
			return nil, fmt.Errorf("read the password: %w", err)
		}
		return pw, nil
	}
	pw, err := ask("Enter password for private key: ")
	if err != nil {
		return nil, err
	}
	again, err := ask("Enter password for private key again: ")
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(pw, again) {
		return nil, errors.New("generate-key-pair: the passwords do not match")
	}
	if len(pw) == 0 {
		return nil, errors.New("generate-key-pair: empty password: pass --no-password for a key without a password")
	}
	return pw, nil
}

// readPassword reads a line from the terminal fd without echoing it. Echo
// is off before the prompt shows, so that a password typed as soon as the
// prompt appears is never echoed (term.ReadPassword turns echo off after).
func readPassword(fd int, w io.Writer, prompt string) ([]byte, error) {
	saved, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	quiet := *saved
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	quiet.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, saved)
	fmt.Fprint(w, prompt)
	var line []byte
	var b [1]byte
	for {
		n, err := unix.Read(fd, b[:])
		if n == 1 {
			if b[0] == '\n' {
				return line, nil
			}
			line = append(line, b[0])
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			return nil, io.EOF
		}
		return line, nil
	}
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

func (f *imageRunFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.dataDir, "data-dir", "", "data `dir` of the image store (default $SLUICE_DATA_DIR, else the config's data_dir)")
	enumVarP(cmd, fs, &f.pullPolicy, "pull", "", "", pullPolicies, "pull policy for image references (default the config's, missing)")
	cmd.MarkFlagDirname("data-dir")
}

func (f *imageRunFlags) fetchOptions(stderr io.Writer) agent.FetchOptions {
	o := agent.FetchOptions{DataDir: f.dataDir, PullPolicy: f.pullPolicy}
	if isTerminal(stderr) {
		o.Progress = newProgress(stderr).event
	}
	return o
}
