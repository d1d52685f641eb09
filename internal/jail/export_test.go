package jail

// Resolvers names the two ways an FS resolves paths, so that every test
// runs against both: openat2 and the walk for kernels without it.
var Resolvers = map[string]func(dir string) (*FS, error){
	"openat2": func(dir string) (*FS, error) { return openWith(dir, openat2Beneath) },
	"walk":    func(dir string) (*FS, error) { return openWith(dir, walkBeneath) },
}
