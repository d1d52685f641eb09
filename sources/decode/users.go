package decode

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// NameResolver turns uids and gids into names. Implementations must be safe
// for concurrent use and fast: they are called once per event and field.
type NameResolver interface {
	User(uid uint32) string
	Group(gid uint32) string
}

// hostNames resolves from the host's /etc/passwd and /etc/group.
var hostNames NameResolver = NewFileResolver("/etc/passwd", "/etc/group")

// minReload bounds how often an unknown id rereads the files, so a stream
// of events from an unknown uid costs no file reads.
const minReload = 5 * time.Second

// FileResolver reads passwd- and group-format files lazily and caches them.
// It rereads a file when an unknown id shows up, at most every 5 seconds,
// so users created after start are found. Safe for concurrent use.
type FileResolver struct {
	users, groups idFile
}

// NewFileResolver returns a resolver over the given passwd and group files.
func NewFileResolver(passwd, group string) *FileResolver {
	return &FileResolver{users: idFile{path: passwd}, groups: idFile{path: group}}
}

// User returns the user name of uid, or "" when unknown.
func (r *FileResolver) User(uid uint32) string { return r.users.name(uid) }

// Group returns the group name of gid, or "" when unknown.
func (r *FileResolver) Group(gid uint32) string { return r.groups.name(gid) }

type idFile struct {
	path   string
	mu     sync.RWMutex
	names  map[uint32]string
	loaded time.Time
}

func (f *idFile) name(id uint32) string {
	f.mu.RLock()
	n, ok := f.names[id]
	stale := !ok && time.Since(f.loaded) > minReload
	f.mu.RUnlock()
	if ok || !stale {
		return n
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n, ok := f.names[id]; ok || time.Since(f.loaded) <= minReload {
		return n
	}
	f.names = readIDFile(f.path)
	f.loaded = time.Now()
	return f.names[id]
}

// readIDFile parses name:x:id:... lines; a missing file yields no names.
func readIDFile(path string) map[uint32]string {
	names := map[uint32]string{}
	file, err := os.Open(path)
	if err != nil {
		return names
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 4)
		if len(parts) < 3 || strings.HasPrefix(parts[0], "#") {
			continue
		}
		id, err := strconv.ParseUint(parts[2], 10, 32)
		if err != nil {
			continue
		}
		if _, dup := names[uint32(id)]; !dup {
			names[uint32(id)] = parts[0]
		}
	}
	return names
}
