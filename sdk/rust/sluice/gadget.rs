//! The host functions of gadget modules (import module `sluice_gadget`,
//! docs/stage-abi.md): the gadget's params and maps, kernel symbols and
//! syscall names.

mod host {
    #[link(wasm_import_module = "sluice_gadget")]
    extern "C" {
        pub fn param_get(name: *const u8, name_len: i32, buf: *mut u8, cap: i32) -> i32;
        pub fn param_set(name: *const u8, name_len: i32, val: *const u8, val_len: i32) -> i32;
        pub fn map_open(name: *const u8, name_len: i32) -> i32;
        pub fn map_info(h: i32, info: *mut u32) -> i32;
        pub fn map_lookup(h: i32, key: *const u8, key_len: i32, val: *mut u8, val_len: i32) -> i32;
        pub fn map_update(h: i32, key: *const u8, key_len: i32, val: *const u8, val_len: i32, flags: i64) -> i32;
        pub fn map_delete(h: i32, key: *const u8, key_len: i32) -> i32;
        pub fn map_next_key(h: i32, key: *const u8, key_len: i32, next: *mut u8, next_len: i32) -> i32;
        pub fn ksym_name(addr: i64, buf: *mut u8, cap: i32, off: *mut u64) -> i32;
        pub fn ksym_addr(name: *const u8, name_len: i32, addr: *mut u64) -> i32;
        pub fn syscall_name(nr: i32, buf: *mut u8, cap: i32) -> i32;
        pub fn syscall_number(name: *const u8, name_len: i32) -> i32;
        pub fn last_error(buf: *mut u8, cap: i32) -> i32;
    }
}

/// A failed host call: its code (ERR_NOT_FOUND -1, ERR_INVALID -2,
/// ERR_PHASE -3, ERR_EXISTS -4, ERR_SYSTEM -5) and the host's message.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub code: i32,
    pub message: String,
}

pub const ERR_NOT_FOUND: i32 = -1;
pub const ERR_INVALID: i32 = -2;
pub const ERR_PHASE: i32 = -3;
pub const ERR_EXISTS: i32 = -4;
pub const ERR_SYSTEM: i32 = -5;

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str(&self.message)
    }
}

fn check(rc: i32) -> Result<i32, Error> {
    if rc >= 0 {
        return Ok(rc);
    }
    let message = text(|b, cap| unsafe { host::last_error(b, cap) }).unwrap_or_default();
    Err(Error { code: rc, message })
}

/// Calls a host function that writes text and returns its full length,
/// again with a larger buffer when the first was too small.
fn text(mut f: impl FnMut(*mut u8, i32) -> i32) -> Result<String, i32> {
    let mut buf = vec![0u8; 128];
    loop {
        let n = f(buf.as_mut_ptr(), buf.len() as i32);
        if n < 0 {
            return Err(n);
        }
        if (n as usize) <= buf.len() {
            buf.truncate(n as usize);
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        buf.resize(n as usize, 0);
    }
}

fn text_call(f: impl FnMut(*mut u8, i32) -> i32) -> Result<String, Error> {
    text(f).map_err(|rc| check(rc).unwrap_err())
}

/// A parameter's value, as text.
pub fn param(name: &str) -> Result<String, Error> {
    text_call(|b, cap| unsafe { host::param_get(name.as_ptr(), name.len() as i32, b, cap) })
}

/// Sets a parameter (in gadget_init only).
pub fn set_param(name: &str, value: &str) -> Result<(), Error> {
    check(unsafe { host::param_set(name.as_ptr(), name.len() as i32, value.as_ptr(), value.len() as i32) }).map(|_| ())
}

/// The number of a syscall on the host's architecture.
pub fn syscall_number(name: &str) -> Result<i32, Error> {
    check(unsafe { host::syscall_number(name.as_ptr(), name.len() as i32) })
}

/// The name of syscall nr.
pub fn syscall_name(nr: i32) -> Result<String, Error> {
    text_call(|b, cap| unsafe { host::syscall_name(nr, b, cap) })
}

/// The kernel symbol addr falls in, and addr's offset from it.
pub fn ksym_name(addr: u64) -> Result<(String, u64), Error> {
    let mut off = 0u64;
    let name = text_call(|b, cap| unsafe { host::ksym_name(addr as i64, b, cap, &mut off) })?;
    Ok((name, off))
}

/// A kernel symbol's address.
pub fn ksym_addr(name: &str) -> Result<u64, Error> {
    let mut addr = 0u64;
    check(unsafe { host::ksym_addr(name.as_ptr(), name.len() as i32, &mut addr) })?;
    Ok(addr)
}

/// The shape of a map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapInfo {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

/// One of the gadget's eBPF maps (from gadget_start on).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Map(i32);

/// map_update flags.
pub const BPF_ANY: i64 = 0;
pub const BPF_NOEXIST: i64 = 1;
pub const BPF_EXIST: i64 = 2;

impl Map {
    pub fn open(name: &str) -> Result<Map, Error> {
        check(unsafe { host::map_open(name.as_ptr(), name.len() as i32) }).map(Map)
    }

    pub fn info(&self) -> Result<MapInfo, Error> {
        let mut i = [0u32; 4];
        check(unsafe { host::map_info(self.0, i.as_mut_ptr()) })?;
        Ok(MapInfo { map_type: i[0], key_size: i[1], value_size: i[2], max_entries: i[3] })
    }

    /// Copies the value of key into value (sizes exactly the map's).
    pub fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result<(), Error> {
        check(unsafe { host::map_lookup(self.0, key.as_ptr(), key.len() as i32, value.as_mut_ptr(), value.len() as i32) }).map(|_| ())
    }

    pub fn update(&self, key: &[u8], value: &[u8], flags: i64) -> Result<(), Error> {
        check(unsafe { host::map_update(self.0, key.as_ptr(), key.len() as i32, value.as_ptr(), value.len() as i32, flags) }).map(|_| ())
    }

    pub fn delete(&self, key: &[u8]) -> Result<(), Error> {
        check(unsafe { host::map_delete(self.0, key.as_ptr(), key.len() as i32) }).map(|_| ())
    }

    /// Writes the key after key (None: the first) into next; Ok(false)
    /// after the last.
    pub fn next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<bool, Error> {
        let (p, n) = key.map_or((core::ptr::null(), 0), |k| (k.as_ptr(), k.len() as i32));
        match check(unsafe { host::map_next_key(self.0, p, n, next.as_mut_ptr(), next.len() as i32) }) {
            Ok(_) => Ok(true),
            Err(e) if e.code == ERR_NOT_FOUND => Ok(false),
            Err(e) => Err(e),
        }
    }
}
