package sources

import (
	"bufio"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/sluice-dev/sluice/internal/kallsyms"
	"github.com/sluice-dev/sluice/sources/decode"
)

// Inspektor Gadget's stack maps (include/gadget/kernel_stack_map.h,
// user_stack_map.h; sluice's headers declare the same).
const (
	kernelStackMap = "ig_kstack"
	userStackMap   = "ig_ustack"
	buildIDMap     = "ig_build_id"
	maxStackDepth  = 127
	// struct bpf_stack_build_id: __s32 status; unsigned char build_id[20];
	// union { __u64 offset; __u64 ip; } (8-aligned).
	buildIDFrameSize = 32
	buildIDStatusOK  = 1 // BPF_STACK_BUILD_ID_VALID
	buildIDStatusIP  = 2 // BPF_STACK_BUILD_ID_IP: only the address is known
	maxCachedStacks  = 16384
)

// stackResolver renders the stacks a gadget records: kernel stacks from
// ig_kstack symbolised with kallsyms, user stacks from ig_build_id (build
// id + file offset per frame) or ig_ustack (addresses), symbolised from the
// process's mappings and the binary's ELF symbols when both are still on
// this host. It is created with the gadget and given its maps at Open; it
// is safe for concurrent use.
type stackResolver struct {
	mu             sync.Mutex
	kstack, ustack *ebpf.Map
	buildIDs       *ebpf.Map
	kernelCache    map[int32]string
	syms           map[string]*elfSymbols // by path + inode
}

var _ decode.StackResolver = (*stackResolver)(nil)

func (r *stackResolver) setMaps(coll *ebpf.Collection) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kstack, r.ustack, r.buildIDs = coll.Maps[kernelStackMap], coll.Maps[userStackMap], coll.Maps[buildIDMap]
	r.kernelCache = map[int32]string{}
}

func (r *stackResolver) clear() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kstack, r.ustack, r.buildIDs = nil, nil, nil
}

// KernelStack renders "[0]func; [1]caller; ..." as IG does. A stack id is
// stable while its entry lives (bpf_get_stackid reuses the bucket of an
// identical stack), so renderings are cached by id.
func (r *stackResolver) KernelStack(id int32) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.kernelCache[id]; ok {
		return s
	}
	if r.kstack == nil {
		return ""
	}
	var ips [maxStackDepth]uint64
	if err := r.kstack.Lookup(uint32(id), &ips); err != nil {
		return ""
	}
	syms, err := kallsyms.Load()
	var b strings.Builder
	for depth, ip := range ips {
		if ip == 0 {
			break
		}
		name := "0x" + strconv.FormatUint(ip, 16)
		if err == nil {
			if n, _, ok := syms.Symbol(ip); ok {
				name = n
			}
		}
		fmt.Fprintf(&b, "[%d]%s; ", depth, name)
	}
	if len(r.kernelCache) >= maxCachedStacks {
		r.kernelCache = map[int32]string{}
	}
	r.kernelCache[id] = b.String()
	return b.String()
}

// UserStack renders a user stack frame by frame: "func+0xoff" when the
// address resolves to a symbol of a binary on this host, else
// "<build id>+0x<file offset>" when the gadget recorded build ids, else the
// address.
func (r *stackResolver) UserStack(s decode.UserStack) string {
	r.mu.Lock()
	ustack, buildIDs := r.ustack, r.buildIDs
	r.mu.Unlock()
	if ustack == nil {
		return ""
	}
	var ips [maxStackDepth]uint64
	if err := ustack.Lookup(uint32(s.StackID), &ips); err != nil {
		return ""
	}
	var ids []byte
	if buildIDs != nil {
		ids, _ = buildIDs.LookupBytes(uint32(s.StackID))
	}
	maps := readProcMaps(s.Pid)
	var b strings.Builder
	for depth, ip := range ips {
		if ip == 0 {
			break
		}
		fmt.Fprintf(&b, "[%d]%s; ", depth, r.userFrame(ip, frameBuildID(ids, depth), maps))
	}
	return b.String()
}

// frameBuildID returns frame i of a bpf_stack_build_id array: the build id
// and file offset when the kernel found them.
func frameBuildID(ids []byte, i int) (f buildIDFrame) {
	off := i * buildIDFrameSize
	if off+buildIDFrameSize > len(ids) {
		return f
	}
	frame := ids[off : off+buildIDFrameSize]
	if int32(binary.NativeEndian.Uint32(frame)) != buildIDStatusOK {
		return f
	}
	return buildIDFrame{id: hex.EncodeToString(frame[4:24]), offset: binary.NativeEndian.Uint64(frame[24:]), ok: true}
}

type buildIDFrame struct {
	id     string
	offset uint64
	ok     bool
}

func (r *stackResolver) userFrame(ip uint64, bid buildIDFrame, maps []procMapping) string {
	for _, m := range maps {
		if ip < m.start || ip >= m.end {
			continue
		}
		fileOff := ip - m.start + m.offset
		if sym := r.symbolize(m, fileOff); sym != "" {
			return sym
		}
		if bid.ok {
			return bid.id + "+0x" + strconv.FormatUint(bid.offset, 16)
		}
		return m.path + "+0x" + strconv.FormatUint(fileOff, 16)
	}
	if bid.ok {
		return bid.id + "+0x" + strconv.FormatUint(bid.offset, 16)
	}
	return "0x" + strconv.FormatUint(ip, 16)
}

func (r *stackResolver) symbolize(m procMapping, fileOff uint64) string {
	key := m.path + "\x00" + strconv.FormatUint(m.inode, 10)
	r.mu.Lock()
	if r.syms == nil {
		r.syms = map[string]*elfSymbols{}
	}
	es, ok := r.syms[key]
	if !ok {
		es = loadELFSymbols(m.path)
		if len(r.syms) >= 256 {
			r.syms = map[string]*elfSymbols{}
		}
		r.syms[key] = es
	}
	r.mu.Unlock()
	return es.lookup(fileOff)
}

// procMapping is one file-backed line of /proc/<pid>/maps.
type procMapping struct {
	start, end, offset, inode uint64
	path                      string
}

func readProcMaps(pid uint32) []procMapping {
	if pid == 0 {
		return nil
	}
	f, err := os.Open("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/maps")
	if err != nil {
		return nil // the process is gone
	}
	defer f.Close()
	var out []procMapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || !strings.HasPrefix(fields[5], "/") {
			continue
		}
		lo, hi, _ := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		off, err3 := strconv.ParseUint(fields[2], 16, 64)
		inode, _ := strconv.ParseUint(fields[4], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		out = append(out, procMapping{start: start, end: end, offset: off, inode: inode, path: fields[5]})
	}
	return out
}

// elfSymbols are a binary's function symbols and its loadable segments,
// enough to turn a file offset into "func+0xoff".
type elfSymbols struct {
	funcs []elfFunc // by address
	progs []elf.ProgHeader
}

type elfFunc struct {
	addr, size uint64
	name       string
}

func loadELFSymbols(path string) *elfSymbols {
	es := &elfSymbols{}
	f, err := elf.Open(path)
	if err != nil {
		return es
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			es.progs = append(es.progs, p.ProgHeader)
		}
	}
	syms, _ := f.Symbols()
	dyn, _ := f.DynamicSymbols()
	for _, s := range append(syms, dyn...) {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 {
			es.funcs = append(es.funcs, elfFunc{addr: s.Value, size: s.Size, name: s.Name})
		}
	}
	// Among aliases of one address, the public name (getpgid, not
	// __getpgid) sorts last, which is the one lookup finds.
	sort.Slice(es.funcs, func(i, j int) bool {
		a, b := es.funcs[i], es.funcs[j]
		if a.addr != b.addr {
			return a.addr < b.addr
		}
		return strings.HasPrefix(a.name, "_") && !strings.HasPrefix(b.name, "_")
	})
	return es
}

func (es *elfSymbols) lookup(fileOff uint64) string {
	var vaddr uint64
	found := false
	for _, p := range es.progs {
		if fileOff >= p.Off && fileOff < p.Off+p.Filesz {
			vaddr, found = fileOff-p.Off+p.Vaddr, true
			break
		}
	}
	if !found {
		return ""
	}
	i := sort.Search(len(es.funcs), func(i int) bool { return es.funcs[i].addr > vaddr }) - 1
	if i < 0 {
		return ""
	}
	fn := es.funcs[i]
	if fn.size != 0 && vaddr >= fn.addr+fn.size {
		return ""
	}
	return fn.name + "+0x" + strconv.FormatUint(vaddr-fn.addr, 16)
}
