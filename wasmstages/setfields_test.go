package wasmstages

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/pipeline/codec"
)

// rawEntry is one entry of a map as encoded: its key and value bytes.
type rawEntry struct{ key, val []byte }

// entriesOf splits a well-formed map into its entries with codec.
func entriesOf(t testing.TB, m []byte) []rawEntry {
	t.Helper()
	n, rest, err := codec.ReadMapHeader(m)
	if err != nil {
		t.Fatalf("read map header: %v", err)
	}
	var out []rawEntry
	for range n {
		kn, err := codec.Skip(rest)
		if err != nil {
			t.Fatal(err)
		}
		vn, err := codec.Skip(rest[kn:])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rawEntry{rest[:kn], rest[kn : kn+vn]})
		rest = rest[kn+vn:]
	}
	return out
}

// strKey returns the payload of a str key, or ok false.
func strKey(k []byte) ([]byte, bool) {
	s, rest, err := codec.ReadString(k)
	return s, err == nil && len(rest) == 0 && k[0] != 0xc4 && k[0] != 0xc5 && k[0] != 0xc6
}

// slowSet is SET as docs/stage-abi.md defines it, written plainly: each
// field replaces the value of the first entry with its key, or is appended
// in the order of set.
func slowSet(t testing.TB, input, set []byte) []byte {
	entries := entriesOf(t, input)
	for _, f := range entriesOf(t, set) {
		want, _ := strKey(f.key)
		found := false
		for i := range entries {
			if k, ok := strKey(entries[i].key); ok && bytes.Equal(k, want) {
				entries[i].val = f.val
				found = true
				break
			}
		}
		if !found {
			entries = append(entries, f)
		}
	}
	out := codec.AppendMapHeader(nil, len(entries))
	for _, e := range entries {
		out = append(append(out, e.key...), e.val...)
	}
	return out
}

func TestSetFields(t *testing.T) {
	many := codec.AppendMapHeader(nil, 15)
	for i := range 15 {
		many = codec.AppendInt(codec.AppendString(many, strings.Repeat("k", i+1)), int64(i))
	}
	long := strings.Repeat("x", 40) // a str8 key
	tests := []struct {
		name       string
		input, set []byte
		same       bool
	}{
		{"append", mapOf("comm", "sh"), mapOf("user", "root"), false},
		{"append, the key's bytes in a value", mapOf("comm", "user", "x", "y"), mapOf("user", "root", "x", "y"), false},
		{"replace in place", mapOf("comm", "sh", "uid", "0"), mapOf("comm", "bash"), false},
		{"replace and append in set's order", mapOf("a", "1", "b", "2"), mapOf("z", "9", "b", "3", "y", "8"), false},
		{"the same value", mapOf("comm", "sh", "user", "root"), mapOf("user", "root"), true},
		{"the same values, in another order", mapOf("a", "1", "b", "2"), mapOf("b", "2", "a", "1"), true},
		{"one the same, one not", mapOf("a", "1", "b", "2"), mapOf("b", "2", "a", "0"), false},
		{"nothing", mapOf("a", "1"), mapOf(), true},
		{"the first of two entries", mapOf("a", "1", "a", "2"), mapOf("a", "3"), false},
		{"a fixmap grows into a map16", many, mapOf("new", "v"), false},
		{"a long key", mapOf(long, "1"), mapOf(long, "2"), false},
		{"an int key in the input is not a string key", []byte{0x82, 0x01, 0xa1, 'x', 0xa1, '1', 0xa1, 'y'}, []byte{0x81, 0xa1, '1', 0xa1, 'z'}, false},
		{"a nested value", mapOf("a", "1"), []byte{0x81, 0xa1, 'a', 0x81, 0xa1, 'b', 0x91, 0xc0}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := checkSetFields(tt.set, nil); err != nil {
				t.Fatalf("checkSetFields: %v", err)
			}
			prefix := []byte("prefix")
			got, same := setFields(bytes.Clone(prefix), tt.input, tt.set)
			if same != tt.same {
				t.Errorf("same = %v, want %v", same, tt.same)
			}
			want := slowSet(t, tt.input, tt.set)
			if same {
				if !bytes.Equal(got, prefix) {
					t.Errorf("an unchanged event appended % x", got[len(prefix):])
				}
				if !bytes.Equal(want, tt.input) && !bytes.Equal(entriesFlat(t, want), entriesFlat(t, tt.input)) {
					t.Errorf("same, but the fields change the event: % x", want)
				}
				return
			}
			if !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], want) {
				t.Errorf("setFields = % x\nwant       % x", got[len(prefix):], want)
			}
		})
	}
}

// entriesFlat is a map's entries without its header, to compare maps whose
// headers encode the same count differently.
func entriesFlat(t testing.TB, m []byte) []byte {
	var b []byte
	for _, e := range entriesOf(t, m) {
		b = append(append(b, e.key...), e.val...)
	}
	return b
}

func TestCheckSetFields(t *testing.T) {
	dups := codec.AppendMapHeader(nil, 20)
	for i := range 20 {
		dups = codec.AppendInt(codec.AppendString(dups, strings.Repeat("k", i%19+1)), int64(i))
	}
	for _, tt := range []struct {
		name string
		set  []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"not a map", []byte{0x91, 0x01}, "not a msgpack map"},
		{"cut short", []byte{0x81, 0xa1, 'a'}, "truncated"},
		{"an int key", []byte{0x81, 0x01, 0x01}, "not a string"},
		{"a bin key", []byte{0x81, 0xc4, 0x01, 'a', 0x01}, "not a string"},
		{"a key twice", mapOf("a", "1", "a", "2"), `key "a" twice`},
		{"a key twice among many", dups, `key "k" twice`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := checkSetFields(tt.set, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("checkSetFields(% x) = %v, want an error containing %q", tt.set, err, tt.want)
			}
		})
	}
}

// FuzzSetFields: for any well-formed event and any fields checkSetFields
// accepts, setFields makes what slowSet does, and says same only when the
// event does not change.
func FuzzSetFields(f *testing.F) {
	f.Add(mapOf("comm", "sh", "uid", "0"), mapOf("user", "root"))
	f.Add(mapOf("a", "1", "b", "2"), mapOf("b", "2", "a", "1"))
	f.Add([]byte{0x82, 0x01, 0xa1, 'x', 0xa1, '1', 0xa1, 'y'}, []byte{0x82, 0xa1, '1', 0xa1, 'z', 0xa1, 'q', 0x91, 0x80})
	for _, s := range validationSeeds() {
		f.Add(s, mapOf("k", "v", "neg", "0"))
	}
	f.Fuzz(func(t *testing.T, input, set []byte) {
		if _, err := checkSetFields(set, nil); !wellFormedMap(input) || err != nil {
			return
		}
		got, same := setFields(nil, input, set)
		want := slowSet(t, input, set)
		if same {
			if len(got) != 0 {
				t.Fatalf("same, but appended % x", got)
			}
			if !bytes.Equal(entriesFlat(t, want), entriesFlat(t, input)) {
				t.Fatalf("same, but the fields change % x into % x", input, want)
			}
			return
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("setFields(% x, % x)\n = % x\nwant % x", input, set, got, want)
		}
		if !wellFormedMap(got) {
			t.Fatalf("setFields made a malformed event % x", got)
		}
	})
}
