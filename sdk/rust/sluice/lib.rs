//! sluice's guest SDK for Rust: Wasm stages and gadget modules against the
//! stage ABI, version 1 (docs/stage-abi.md), built with plain `rustc` for
//! `wasm32-wasi` and no crate from outside (sdk/rust/README.md).
//!
//! A stage is a type implementing [`Stage`] (and `Default`), exported with
//! [`export_stage!`]; a gadget module implements [`Gadget`] too and is
//! exported with [`export_gadget!`]. The SDK owns the ABI: the batch and
//! result formats, the input buffer, the msgpack of events and params.
//! Events are read in place; an event kept unchanged is passed on by
//! reference ([`Output::keep`]), never re-encoded.

pub mod gadget;
pub mod msgpack;

pub use msgpack::{Value, Writer};

/// The version of the stage ABI this SDK implements.
pub const ABI_VERSION: i32 = 1;

mod host {
    #[link(wasm_import_module = "sluice")]
    extern "C" {
        pub fn log(level: i32, ptr: *const u8, len: i32);
        pub fn set_error(ptr: *const u8, len: i32);
        pub fn counter_add(name: *const u8, len: i32, delta: i64);
        pub fn now() -> i64;
    }
}

/// Log levels of [`log`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

/// Writes a line into the agent's log, with the stage's name.
pub fn log(level: Level, msg: &str) {
    unsafe { host::log(level as i32, msg.as_ptr(), msg.len() as i32) }
}

/// Adds delta to the guest counter name
/// (`sluice_stage_guest_total{name=STAGE, counter=NAME}`).
pub fn counter_add(name: &str, delta: i64) {
    unsafe { host::counter_add(name.as_ptr(), name.len() as i32, delta) }
}

/// Wall-clock time, in nanoseconds since the Unix epoch.
pub fn now() -> i64 {
    unsafe { host::now() }
}

/// The message of a failing init, batch or hook.
pub fn set_error(msg: &str) {
    unsafe { host::set_error(msg.as_ptr(), msg.len() as i32) }
}

/// One event of a batch: a msgpack map (docs/event-format.md), borrowed.
#[derive(Clone, Copy)]
pub struct Event<'a> {
    raw: &'a [u8],
    map: Value<'a>,
}

impl<'a> Event<'a> {
    /// Reads an event's map header; None when it is not a msgpack map.
    /// The host hands over well-formed events, so the keys are read as
    /// they are asked for, not checked up front.
    pub fn parse(raw: &'a [u8]) -> Option<Event<'a>> {
        let (n, head) = match *raw.first()? {
            c @ 0x80..=0x8f => ((c & 0x0f) as u32, 1),
            0xde if raw.len() >= 3 => (u16::from_be_bytes([raw[1], raw[2]]) as u32, 3),
            0xdf if raw.len() >= 5 => (u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]), 5),
            _ => return None,
        };
        Some(Event { raw, map: Value::Map(n, &raw[head..]) })
    }

    /// The event's encoded bytes.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The value of a key.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.map.get(key)
    }

    /// The bytes of a string key.
    pub fn str_bytes(&self, key: &str) -> Option<&'a [u8]> {
        self.get(key).and_then(|v| v.as_bytes())
    }

    pub fn str(&self, key: &str) -> Option<&'a str> {
        self.get(key).and_then(|v| v.as_str())
    }

    pub fn uint(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(|v| v.as_u64())
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(|v| v.as_i64())
    }

    /// The keys and values, in order.
    pub fn entries(&self) -> msgpack::Entries<'a> {
        self.map.entries()
    }

    /// A copy of the event to change: keys set on it replace the event's
    /// own, new keys come last.
    pub fn edit(&self) -> EventBuilder<'a> {
        EventBuilder { from: Some(*self), set: Vec::new() }
    }
}

/// Builds an event: a copy of one with some keys set, or a new one.
pub struct EventBuilder<'a> {
    from: Option<Event<'a>>,
    set: Vec<(String, Vec<u8>)>,
}

impl<'a> EventBuilder<'a> {
    /// An event with no keys yet.
    pub fn new() -> EventBuilder<'a> {
        EventBuilder { from: None, set: Vec::new() }
    }

    /// Sets key to an encoded value (see [`Writer`]).
    pub fn set_raw(mut self, key: &str, value: Vec<u8>) -> Self {
        match self.set.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value,
            None => self.set.push((key.to_string(), value)),
        }
        self
    }

    pub fn set_str(self, key: &str, value: &str) -> Self {
        let mut w = Writer::default();
        w.str(value);
        self.set_raw(key, w.buf)
    }

    pub fn set_uint(self, key: &str, value: u64) -> Self {
        let mut w = Writer::default();
        w.uint(value);
        self.set_raw(key, w.buf)
    }

    pub fn set_int(self, key: &str, value: i64) -> Self {
        let mut w = Writer::default();
        w.int(value);
        self.set_raw(key, w.buf)
    }

    pub fn set_bool(self, key: &str, value: bool) -> Self {
        let mut w = Writer::default();
        w.bool(value);
        self.set_raw(key, w.buf)
    }

    /// The encoded event.
    pub fn finish(self) -> Vec<u8> {
        let mut body = Writer::default();
        let mut n = 0u32;
        let mut used = vec![false; self.set.len()];
        if let Some(ev) = self.from {
            let mut it = ev.entries();
            while let Some((k, raw)) = it.next_raw() {
                let kb = k.as_bytes().unwrap_or_default();
                match self.set.iter().position(|(key, _)| key.as_bytes() == kb) {
                    Some(i) => {
                        used[i] = true;
                        body.str_bytes(kb);
                        body.raw(&self.set[i].1);
                    }
                    None => {
                        body.str_bytes(kb);
                        body.raw(raw);
                    }
                }
                n += 1;
            }
        }
        for (i, (k, v)) in self.set.iter().enumerate() {
            if !used[i] {
                body.str(k);
                body.raw(v);
                n += 1;
            }
        }
        let mut w = Writer::default();
        w.map_header(n);
        w.raw(&body.buf);
        w.buf
    }
}

impl<'a> Default for EventBuilder<'a> {
    fn default() -> Self {
        Self::new()
    }
}

/// A stage's (or gadget module's) params: a msgpack map of the config's
/// values.
#[derive(Clone, Copy)]
pub struct Params<'a> {
    pub map: Value<'a>,
}

impl<'a> Params<'a> {
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.map.get(key)
    }

    /// The keys, for checking that there is none the stage does not know.
    pub fn keys(&self) -> impl Iterator<Item = &'a str> {
        self.map.entries().map(|(k, _)| k.as_str().unwrap_or(""))
    }
}

/// What a stage makes of the events of a batch: for each event, keep it,
/// emit events derived from it, or nothing (it is dropped).
pub struct Output {
    buf: Vec<u8>,
    count: u32,
    index: u32,
}

const OP_KEEP: u8 = 1;
const OP_EMIT: u8 = 2;

impl Output {
    /// Passes the current event on unchanged (by reference: the host
    /// reuses its bytes).
    pub fn keep(&mut self) {
        self.entry(OP_KEEP);
    }

    /// Emits an event (a msgpack map) derived from the current one: it
    /// inherits its source and sequence number. Emitting without keeping
    /// replaces the event.
    pub fn emit(&mut self, event: &[u8]) {
        self.entry(OP_EMIT);
        self.buf.extend_from_slice(&(event.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(event);
    }

    fn entry(&mut self, op: u8) {
        self.buf.push(op);
        self.buf.extend_from_slice(&self.index.to_le_bytes());
        self.count += 1;
    }
}

/// A Wasm stage. One value runs in each instance; it is used by one call
/// at a time.
pub trait Stage {
    /// Called once, before any batch, with the stage's params. An error
    /// refuses the module, with its message.
    fn init(&mut self, _params: Params) -> Result<(), String> {
        Ok(())
    }

    /// Called for every event of a batch, in order. An error fails the
    /// batch (it then follows the stage's on_error), with its message.
    fn process(&mut self, ev: &Event, out: &mut Output) -> Result<(), String>;
}

/// A gadget module (docs/stage-abi.md, "Gadget modules"): a stage with the
/// gadget's lifecycle hooks. See [`gadget`] for its host functions.
pub trait Gadget: Stage {
    /// Before the gadget loads: it may read and set the gadget's params.
    fn gadget_init(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Once the gadget is loaded and attached: its maps exist.
    fn gadget_start(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Before the gadget detaches (its maps are still there).
    fn gadget_stop(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// The runtime the export macros call into; not for stages to use.
#[doc(hidden)]
pub mod rt {
    use super::*;

    static mut INPUT: Vec<u8> = Vec::new();
    static mut RESULT: Vec<u8> = Vec::new();

    pub fn alloc(size: i32) -> i32 {
        unsafe {
            let input = &mut *core::ptr::addr_of_mut!(INPUT);
            input.clear();
            if input.try_reserve_exact(size.max(0) as usize).is_err() {
                return 0;
            }
            input.resize(size.max(0) as usize, 0);
            input.as_mut_ptr() as i32
        }
    }

    fn input(ptr: i32, len: i32) -> &'static [u8] {
        unsafe { core::slice::from_raw_parts(ptr as usize as *const u8, len.max(0) as usize) }
    }

    pub fn init<T: Stage + Default>(slot: &mut Option<T>, ptr: i32, len: i32) -> i32 {
        let mut st = T::default();
        let params = match msgpack::read(input(ptr, len)) {
            Ok((map @ Value::Map(..), _)) => Params { map },
            _ => {
                set_error("params: not a msgpack map");
                return 1;
            }
        };
        if let Err(e) = st.init(params) {
            set_error(&e);
            return 1;
        }
        *slot = Some(st);
        0
    }

    pub fn process<T: Stage>(slot: &mut Option<T>, ptr: i32, len: i32) -> i64 {
        let st = match slot.as_mut() {
            Some(st) => st,
            None => {
                set_error("sluice_process before sluice_init");
                return -1;
            }
        };
        let batch = input(ptr, len);
        let result = unsafe { &mut *core::ptr::addr_of_mut!(RESULT) };
        let mut out = Output { buf: core::mem::take(result), count: 0, index: 0 };
        out.buf.clear();
        out.buf.extend_from_slice(&[0, 0, 0, 0]);
        if batch.len() < 4 {
            set_error("a batch shorter than its count");
            return -1;
        }
        let n = u32::from_le_bytes([batch[0], batch[1], batch[2], batch[3]]);
        let mut at = 4usize;
        for i in 0..n {
            if batch.len() < at + 4 {
                set_error("a truncated batch");
                return -1;
            }
            let l = u32::from_le_bytes([batch[at], batch[at + 1], batch[at + 2], batch[at + 3]]) as usize;
            at += 4;
            if batch.len() < at + l {
                set_error("a truncated batch");
                return -1;
            }
            let raw = &batch[at..at + l];
            at += l;
            out.index = i;
            let ev = match Event::parse(raw) {
                Some(ev) => ev,
                None => {
                    set_error(&format!("event {}: not a msgpack map", i));
                    return -1;
                }
            };
            if let Err(e) = st.process(&ev, &mut out) {
                set_error(&e);
                *result = out.buf;
                return -1;
            }
        }
        let count = out.count.to_le_bytes();
        out.buf[..4].copy_from_slice(&count);
        *result = out.buf;
        ((result.as_ptr() as i64) << 32) | result.len() as i64
    }

    pub fn hook<T, F: FnOnce(&mut T) -> Result<(), String>>(slot: &mut Option<T>, f: F) -> i32 {
        match slot.as_mut() {
            None => {
                set_error("a gadget hook before sluice_init");
                1
            }
            Some(st) => match f(st) {
                Ok(()) => 0,
                Err(e) => {
                    set_error(&e);
                    1
                }
            },
        }
    }
}

/// Exports a stage type (Stage + Default) as the module's stage: the ABI's
/// version, alloc, init and process.
#[macro_export]
macro_rules! export_stage {
    ($t:ty) => {
        static mut __SLUICE_STAGE: Option<$t> = None;

        #[no_mangle]
        pub extern "C" fn sluice_abi_version() -> i32 {
            $crate::ABI_VERSION
        }

        #[no_mangle]
        pub extern "C" fn sluice_alloc(size: i32) -> i32 {
            $crate::rt::alloc(size)
        }

        #[no_mangle]
        pub extern "C" fn sluice_init(ptr: i32, len: i32) -> i32 {
            $crate::rt::init(unsafe { &mut *core::ptr::addr_of_mut!(__SLUICE_STAGE) }, ptr, len)
        }

        #[no_mangle]
        pub extern "C" fn sluice_process(ptr: i32, len: i32) -> i64 {
            $crate::rt::process(unsafe { &mut *core::ptr::addr_of_mut!(__SLUICE_STAGE) }, ptr, len)
        }
    };
}

/// Exports a gadget module type (Gadget + Default): a stage's exports and
/// the lifecycle hooks gadget_init, gadget_start and gadget_stop.
#[macro_export]
macro_rules! export_gadget {
    ($t:ty) => {
        $crate::export_stage!($t);

        #[no_mangle]
        pub extern "C" fn gadget_init() -> i32 {
            $crate::rt::hook(unsafe { &mut *core::ptr::addr_of_mut!(__SLUICE_STAGE) }, |g: &mut $t| $crate::Gadget::gadget_init(g))
        }

        #[no_mangle]
        pub extern "C" fn gadget_start() -> i32 {
            $crate::rt::hook(unsafe { &mut *core::ptr::addr_of_mut!(__SLUICE_STAGE) }, |g: &mut $t| $crate::Gadget::gadget_start(g))
        }

        #[no_mangle]
        pub extern "C" fn gadget_stop() -> i32 {
            $crate::rt::hook(unsafe { &mut *core::ptr::addr_of_mut!(__SLUICE_STAGE) }, |g: &mut $t| $crate::Gadget::gadget_stop(g))
        }
    };
}
