package eventtype

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"strings"
	"testing"
)

// relocatable builds a minimal ELF64 BPF object with one data section,
// .debug_str_offsets, relocated by rels against one symbol of value symVal.
func relocatable(t *testing.T, data []byte, symVal uint64, rels []elf.Rel64) *elf.File {
	t.Helper()
	le := binary.LittleEndian
	shstr := []byte("\x00.debug_str_offsets\x00.rel.debug_str_offsets\x00.symtab\x00.strtab\x00.shstrtab\x00")
	name := func(s string) uint32 { return uint32(bytes.Index(shstr, []byte("\x00"+s+"\x00")) + 1) }
	var relBuf, symBuf bytes.Buffer
	for _, r := range rels {
		binary.Write(&relBuf, le, r)
	}
	binary.Write(&symBuf, le, elf.Sym64{})
	binary.Write(&symBuf, le, elf.Sym64{Name: 1, Info: elf.ST_INFO(elf.STB_GLOBAL, elf.STT_OBJECT), Shndx: 1, Value: symVal})
	strtab := []byte("\x00sym\x00")

	const ehsize, shentsize = 64, 64
	var body bytes.Buffer
	off := func() uint64 { return uint64(ehsize + body.Len()) }
	dataOff := off()
	body.Write(data)
	relOff := off()
	body.Write(relBuf.Bytes())
	symOff := off()
	body.Write(symBuf.Bytes())
	strOff := off()
	body.Write(strtab)
	shstrOff := off()
	body.Write(shstr)
	shOff := off()
	sections := []elf.Section64{
		{},
		{Name: name(".debug_str_offsets"), Type: uint32(elf.SHT_PROGBITS), Off: dataOff, Size: uint64(len(data)), Addralign: 1},
		{Name: name(".rel.debug_str_offsets"), Type: uint32(elf.SHT_REL), Off: relOff, Size: uint64(relBuf.Len()), Link: 3, Info: 1, Addralign: 8, Entsize: 16},
		{Name: name(".symtab"), Type: uint32(elf.SHT_SYMTAB), Off: symOff, Size: uint64(symBuf.Len()), Link: 4, Info: 1, Addralign: 8, Entsize: 24},
		{Name: name(".strtab"), Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(strtab)), Addralign: 1},
		{Name: name(".shstrtab"), Type: uint32(elf.SHT_STRTAB), Off: shstrOff, Size: uint64(len(shstr)), Addralign: 1},
	}
	for _, s := range sections {
		binary.Write(&body, le, s)
	}
	hdr := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_BPF), Version: uint32(elf.EV_CURRENT),
		Shoff: shOff, Ehsize: ehsize, Shentsize: shentsize, Shnum: uint16(len(sections)), Shstrndx: 5,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	var file bytes.Buffer
	binary.Write(&file, le, hdr)
	file.Write(body.Bytes())
	f, err := elf.NewFile(bytes.NewReader(file.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestRelocate: a debug section's relocations add the symbol's value to
// what is in place (REL: the addend is in the section), 32 or 64 bits.
func TestRelocate(t *testing.T) {
	data := make([]byte, 16)
	binary.LittleEndian.PutUint32(data[0:], 5)
	binary.LittleEndian.PutUint64(data[8:], 7)
	rels := []elf.Rel64{
		{Off: 0, Info: elf.R_INFO(1, rBPFAbs32)},
		{Off: 8, Info: elf.R_INFO(1, rBPFAbs64)},
	}
	f := relocatable(t, data, 0x100, rels)
	b, err := f.Section(".debug_str_offsets").Data()
	if err != nil {
		t.Fatal(err)
	}
	if err := relocate(f, ".debug_str_offsets", b); err != nil {
		t.Fatal(err)
	}
	if got32, got64 := binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint64(b[8:]); got32 != 0x105 || got64 != 0x107 {
		t.Errorf("relocated values %#x and %#x, want 0x105 and 0x107", got32, got64)
	}

	for _, tc := range []struct {
		rel  elf.Rel64
		want string
	}{
		{elf.Rel64{Off: 0, Info: elf.R_INFO(1, 10)}, "relocation type 10 at 0x0 is not one DWARF uses"},
		{elf.Rel64{Off: 14, Info: elf.R_INFO(1, rBPFAbs32)}, "past the section's end"},
		{elf.Rel64{Off: 0, Info: elf.R_INFO(9, rBPFAbs32)}, "names symbol 9"},
	} {
		f := relocatable(t, make([]byte, 16), 1, []elf.Rel64{tc.rel})
		b, _ := f.Section(".debug_str_offsets").Data()
		if err := relocate(f, ".debug_str_offsets", b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("relocation %+v: %v, want an error saying %q", tc.rel, err, tc.want)
		}
	}
}
