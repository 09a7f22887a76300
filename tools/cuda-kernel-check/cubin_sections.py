"""Compares two CUBINs kernel by kernel (tools/cuda-kernel-check/same_cubin.sh): the machine code of each entry point
(the ELF section .text.<name>), its constant bank 0 (parameters) and static shared memory, byte for byte. Prints one
line a kernel: same / differs / only in one; exit status 0 when every kernel that both have is the same. Its
.nv.info.<name> section (registers, launch bounds, ...) also holds symbol indices that move when another kernel of the
file comes or goes, so a difference there alone is only noted.
    python3 cubin_sections.py OLD.cubin NEW.cubin
"""
import struct
import sys


def sections(path):
    b = open(path, "rb").read()
    assert b[:4] == b"\x7fELF" and b[4] == 2, f"{path}: not an ELF64 CUBIN"
    shoff, = struct.unpack_from("<Q", b, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", b, 0x3A)
    hdrs = [struct.unpack_from("<IIQQQQIIQQ", b, shoff + i * shentsize) for i in range(shnum)]
    stro = hdrs[shstrndx][4]
    out = {}
    for name, typ, _flags, _addr, off, size, *_ in hdrs:
        n = b[stro + name:b.index(b"\0", stro + name)].decode()
        out[n] = b"" if typ == 8 else b[off:off + size]  # SHT_NOBITS: no bytes
    return out


old, new = sections(sys.argv[1]), sections(sys.argv[2])
kernels = sorted({n[len(".text."):] for n in list(old) + list(new) if n.startswith(".text.")})
bad = 0
for k in kernels:
    parts = [f".text.{k}", f".nv.constant0.{k}", f".nv.shared.{k}"]
    if f".text.{k}" not in old or f".text.{k}" not in new:
        print(f"{k}: only in the {'new' if f'.text.{k}' in new else 'old'} CUBIN")
        continue
    diff = [p for p in parts if old.get(p) != new.get(p)]
    bad += bool(diff)
    info = "" if old.get(f".nv.info.{k}") == new.get(f".nv.info.{k}") else "; .nv.info differs"
    print(f"{k}: {'same' if not diff else 'differs in ' + ', '.join(diff)} ({len(new[f'.text.{k}'])} bytes of code{info})")
sys.exit(1 if bad else 0)
