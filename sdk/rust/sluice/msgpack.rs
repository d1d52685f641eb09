//! The msgpack the stage ABI speaks: a reader of values in place (events and
//! params are borrowed, never copied) and a writer of events.

/// A msgpack value, borrowed from the buffer it was read from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    /// An array: its element count and the encoded elements.
    Array(u32, &'a [u8]),
    /// A map: its entry count and the encoded keys and values.
    Map(u32, &'a [u8]),
    /// An extension type (the ABI sends none; read for completeness).
    Ext(i8, &'a [u8]),
}

/// Why a buffer is not the msgpack it should be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Malformed;

fn take(b: &[u8], n: usize) -> Result<(&[u8], &[u8]), Malformed> {
    if b.len() < n {
        return Err(Malformed);
    }
    Ok(b.split_at(n))
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, &c| acc << 8 | c as u64)
}

/// Reads a w-byte big-endian length.
fn sized(w: usize, b: &[u8]) -> Result<(usize, &[u8]), Malformed> {
    let (n, rest) = take(b, w)?;
    Ok((be(n) as usize, rest))
}

/// Reads one value from the front of b and returns it with the rest of b.
pub fn read(b: &[u8]) -> Result<(Value, &[u8]), Malformed> {
    let (&c, rest) = b.split_first().ok_or(Malformed)?;
    Ok(match c {
        0x00..=0x7f => (Value::Uint(c as u64), rest),
        0x80..=0x8f => container(rest, (c & 0x0f) as u32, true)?,
        0x90..=0x9f => container(rest, (c & 0x0f) as u32, false)?,
        0xa0..=0xbf => {
            let (s, rest) = take(rest, (c & 0x1f) as usize)?;
            (Value::Str(s), rest)
        }
        0xc0 => (Value::Nil, rest),
        0xc2 => (Value::Bool(false), rest),
        0xc3 => (Value::Bool(true), rest),
        0xc4..=0xc6 => {
            let (n, rest) = sized(1 << (c - 0xc4), rest)?;
            let (s, rest) = take(rest, n)?;
            (Value::Bin(s), rest)
        }
        0xc7..=0xc9 => {
            let (n, rest) = sized(1 << (c - 0xc7), rest)?;
            let (t, rest) = take(rest, 1)?;
            let (s, rest) = take(rest, n)?;
            (Value::Ext(t[0] as i8, s), rest)
        }
        0xca => {
            let (f, rest) = take(rest, 4)?;
            (Value::Float(f32::from_bits(be(f) as u32) as f64), rest)
        }
        0xcb => {
            let (f, rest) = take(rest, 8)?;
            (Value::Float(f64::from_bits(be(f))), rest)
        }
        0xcc..=0xcf => {
            let (n, rest) = take(rest, 1 << (c - 0xcc))?;
            (Value::Uint(be(n)), rest)
        }
        0xd0..=0xd3 => {
            let w = 1usize << (c - 0xd0);
            let (n, rest) = take(rest, w)?;
            let shift = 64 - 8 * w as u32;
            (Value::Int(((be(n) << shift) as i64) >> shift), rest)
        }
        0xd4..=0xd8 => {
            let (t, rest) = take(rest, 1)?;
            let (s, rest) = take(rest, 1 << (c - 0xd4))?;
            (Value::Ext(t[0] as i8, s), rest)
        }
        0xd9..=0xdb => {
            let (n, rest) = sized(1 << (c - 0xd9), rest)?;
            let (s, rest) = take(rest, n)?;
            (Value::Str(s), rest)
        }
        0xdc | 0xdd => {
            let (n, rest) = sized(if c == 0xdc { 2 } else { 4 }, rest)?;
            container(rest, n as u32, false)?
        }
        0xde | 0xdf => {
            let (n, rest) = sized(if c == 0xde { 2 } else { 4 }, rest)?;
            container(rest, n as u32, true)?
        }
        0xe0..=0xff => (Value::Int(c as i8 as i64), rest),
        0xc1 => return Err(Malformed),
    })
}

/// Reads the body of an array or map of n elements (entries).
fn container(b: &[u8], n: u32, map: bool) -> Result<(Value, &[u8]), Malformed> {
    let items = if map { n as usize * 2 } else { n as usize };
    let mut at = 0;
    for _ in 0..items {
        at += skip(&b[at..])?;
    }
    let (body, rest) = b.split_at(at);
    Ok((if map { Value::Map(n, body) } else { Value::Array(n, body) }, rest))
}

/// Returns the size of the value at the front of b without reading it:
/// the fast path of iterating an event's keys.
pub fn skip(b: &[u8]) -> Result<usize, Malformed> {
    let c = *b.first().ok_or(Malformed)?;
    let (head, body, items) = match c {
        0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (1, 0, 0),
        0x80..=0x8f => (1, 0, 2 * (c & 0x0f) as usize),
        0x90..=0x9f => (1, 0, (c & 0x0f) as usize),
        0xa0..=0xbf => (1, (c & 0x1f) as usize, 0),
        0xc4..=0xc6 | 0xd9..=0xdb => {
            let w = 1usize << if c <= 0xc6 { c - 0xc4 } else { c - 0xd9 };
            let (n, _) = sized(w, &b[1..])?;
            (1 + w, n, 0)
        }
        0xc7..=0xc9 => {
            let w = 1usize << (c - 0xc7);
            let (n, _) = sized(w, &b[1..])?;
            (2 + w, n, 0)
        }
        0xca => (5, 0, 0),
        0xcb => (9, 0, 0),
        0xcc..=0xcf => (1 + (1usize << (c - 0xcc)), 0, 0),
        0xd0..=0xd3 => (1 + (1usize << (c - 0xd0)), 0, 0),
        0xd4..=0xd8 => (2 + (1usize << (c - 0xd4)), 0, 0),
        0xdc | 0xdd | 0xde | 0xdf => {
            let w = if c == 0xdc || c == 0xde { 2 } else { 4 };
            let (n, _) = sized(w, &b[1..])?;
            (1 + w, 0, if c >= 0xde { 2 * n } else { n })
        }
        0xc1 => return Err(Malformed),
    };
    let mut at = head + body;
    if b.len() < at {
        return Err(Malformed);
    }
    for _ in 0..items {
        at += skip(&b[at..])?;
    }
    Ok(at)
}

impl<'a> Value<'a> {
    /// The text of a string.
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Value::Str(s) => core::str::from_utf8(s).ok(),
            _ => None,
        }
    }

    /// The bytes of a string or bin.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            Value::Str(s) | Value::Bin(s) => Some(s),
            _ => None,
        }
    }

    /// An integer as u64; a float holding a whole number counts (HCL has
    /// one number type, so params may arrive either way).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Uint(u) => Some(u),
            Value::Int(i) if i >= 0 => Some(i as u64),
            Value::Float(f) if f >= 0.0 && f.fract() == 0.0 && f < 18446744073709551616.0 => Some(f as u64),
            _ => None,
        }
    }

    /// An integer as i64 (whole floats too).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::Uint(u) if u <= i64::MAX as u64 => Some(u as i64),
            Value::Float(f) if f.fract() == 0.0 && f >= -9223372036854775808.0 && f < 9223372036854775808.0 => Some(f as i64),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Float(f) => Some(f),
            Value::Int(i) => Some(i as f64),
            Value::Uint(u) => Some(u as f64),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The elements of an array (empty for other values).
    pub fn elements(&self) -> Elements<'a> {
        match *self {
            Value::Array(n, b) => Elements { n, b },
            _ => Elements { n: 0, b: &[] },
        }
    }

    /// The entries of a map (empty for other values).
    pub fn entries(&self) -> Entries<'a> {
        match *self {
            Value::Map(n, b) => Entries { n, b },
            _ => Entries { n: 0, b: &[] },
        }
    }

    /// The value of a map's string key.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        let mut it = self.entries();
        while let Some((k, raw)) = it.next_key_raw() {
            if k == key.as_bytes() {
                return read(raw).ok().map(|(v, _)| v);
            }
        }
        None
    }

    /// What kind of value it is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::Uint(_) | Value::Float(_) => "number",
            Value::Str(_) => "string",
            Value::Bin(_) => "bytes",
            Value::Array(..) => "list",
            Value::Map(..) => "map",
            Value::Ext(..) => "extension",
        }
    }
}

/// The elements of an array value.
pub struct Elements<'a> {
    n: u32,
    b: &'a [u8],
}

impl<'a> Iterator for Elements<'a> {
    type Item = Value<'a>;
    fn next(&mut self) -> Option<Value<'a>> {
        if self.n == 0 {
            return None;
        }
        self.n -= 1;
        let (v, rest) = read(self.b).ok()?;
        self.b = rest;
        Some(v)
    }
}

/// The entries of a map value, keys and values.
pub struct Entries<'a> {
    n: u32,
    b: &'a [u8],
}

impl<'a> Entries<'a> {
    /// The next entry's key (a string's bytes; empty for other keys) and
    /// its encoded value, reading neither: the fast path of a lookup.
    pub fn next_key_raw(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        if self.n == 0 {
            return None;
        }
        self.n -= 1;
        let b = self.b;
        let (key, at) = match *b.first()? {
            c @ 0xa0..=0xbf => {
                let n = 1 + (c & 0x1f) as usize;
                (b.get(1..n)?, n)
            }
            _ => {
                let n = skip(b).ok()?;
                // Bin keys match too, as in the C and Go SDKs and the
                // host's find_key: some encoders write byte-string keys.
                let k = match read(b).ok()?.0 {
                    Value::Str(s) | Value::Bin(s) => s,
                    _ => &[],
                };
                (k, n)
            }
        };
        let n = skip(&b[at..]).ok()?;
        let raw = &b[at..at + n];
        self.b = &b[at + n..];
        Some((key, raw))
    }

    /// The next entry with its value still encoded: what an event copies
    /// from its input without decoding it.
    pub fn next_raw(&mut self) -> Option<(Value<'a>, &'a [u8])> {
        if self.n == 0 {
            return None;
        }
        self.n -= 1;
        let (k, rest) = read(self.b).ok()?;
        let n = skip(rest).ok()?;
        let (raw, after) = rest.split_at(n);
        self.b = after;
        Some((k, raw))
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = (Value<'a>, Value<'a>);
    fn next(&mut self) -> Option<(Value<'a>, Value<'a>)> {
        let (k, raw) = self.next_raw()?;
        Some((k, read(raw).ok()?.0))
    }
}

/// Appends msgpack values to a buffer.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn nil(&mut self) {
        self.buf.push(0xc0);
    }

    pub fn bool(&mut self, v: bool) {
        self.buf.push(if v { 0xc3 } else { 0xc2 });
    }

    pub fn uint(&mut self, v: u64) {
        match v {
            0..=0x7f => self.buf.push(v as u8),
            0x80..=0xff => self.buf.extend_from_slice(&[0xcc, v as u8]),
            0x100..=0xffff => {
                self.buf.push(0xcd);
                self.buf.extend_from_slice(&(v as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.buf.push(0xce);
                self.buf.extend_from_slice(&(v as u32).to_be_bytes());
            }
            _ => {
                self.buf.push(0xcf);
                self.buf.extend_from_slice(&v.to_be_bytes());
            }
        }
    }

    pub fn int(&mut self, v: i64) {
        if v >= 0 {
            return self.uint(v as u64);
        }
        if v >= -32 {
            self.buf.push(v as u8);
        } else {
            self.buf.push(0xd3);
            self.buf.extend_from_slice(&v.to_be_bytes());
        }
    }

    pub fn float(&mut self, v: f64) {
        self.buf.push(0xcb);
        self.buf.extend_from_slice(&v.to_bits().to_be_bytes());
    }

    pub fn str(&mut self, s: &str) {
        self.str_bytes(s.as_bytes());
    }

    pub fn str_bytes(&mut self, s: &[u8]) {
        let n = s.len();
        if n < 32 {
            self.buf.push(0xa0 | n as u8);
        } else if n <= 0xff {
            self.buf.extend_from_slice(&[0xd9, n as u8]);
        } else if n <= 0xffff {
            self.buf.push(0xda);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.buf.push(0xdb);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        }
        self.buf.extend_from_slice(s);
    }

    pub fn array_header(&mut self, n: u32) {
        self.header(n, 0x90, 0xdc);
    }

    pub fn map_header(&mut self, n: u32) {
        self.header(n, 0x80, 0xde);
    }

    fn header(&mut self, n: u32, fix: u8, wide: u8) {
        if n < 16 {
            self.buf.push(fix | n as u8);
        } else if n <= 0xffff {
            self.buf.push(wide);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.buf.push(wide + 1);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
    }

    /// Appends an already encoded value.
    pub fn raw(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
}
