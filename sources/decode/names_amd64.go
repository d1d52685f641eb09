package decode

// O_LARGEFILE is 0 in x/sys/unix on 64-bit platforms (it is implied), but
// the kernel still reports the bit when a 32-bit-style caller sets it.
const largeFile = 0o100000
