//! JSON to and from Python objects for the idempotency cache's replay path, giving exactly
//! what the Python layer's `json` calls give, for the common cases only.
//!
//! [`loads`] reads what `json.loads(data.decode())` would read and returns the same objects,
//! or `None` ("not handled here") for anything it does not read exactly the same way: invalid
//! UTF-8, `NaN` / `Infinity`, lone surrogates in `\u` escapes, integers of more than 18
//! digits, control characters in strings, nesting deeper than [`MAX_DEPTH`], and every
//! syntax error. The caller then asks Python's `json` (which gives the value, or raises the
//! error it raises today). Numbers: an integer literal is an `int`; one with a fraction or
//! an exponent is `float(text)` (Rust's parse and CPython's are both correctly rounded, so
//! they agree, overflow to infinity included). Objects are filled in order with
//! `dict[key] = value`, so a repeated key keeps its first position and its last value.
//!
//! [`dumps`] writes `json.dumps(value, separators=(",", ":"), ensure_ascii=False)` for
//! values made only of `None`, `bool`, `int` (within i64), finite `float` (its `repr`),
//! `str`, and `dict` (with `str` keys), `list` and `tuple` of those, exact types only (no
//! subclasses); anything else is `None` and the caller uses Python's encoder.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// Deeper than this, Python's own decoder and encoder decide (recursion limits included).
pub const MAX_DEPTH: u32 = 200;

/// `json.loads(data.decode())`, or None when Python's `json` must answer.
pub fn loads<'py>(py: Python<'py>, data: &[u8]) -> Option<Bound<'py, PyAny>> {
    let text = std::str::from_utf8(data).ok()?;
    let mut p = Reader { py, s: text.as_bytes(), text, i: 0 };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    (p.i == p.s.len()).then_some(v)
}

struct Reader<'a, 'py> {
    py: Python<'py>,
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl<'py> Reader<'_, 'py> {
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn eat(&mut self, lit: &[u8]) -> Option<()> {
        if self.s.get(self.i..self.i + lit.len())? == lit {
            self.i += lit.len();
            Some(())
        } else {
            None
        }
    }

    fn value(&mut self, depth: u32) -> Option<Bound<'py, PyAny>> {
        let py = self.py;
        match *self.s.get(self.i)? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(|s| s.into_any()),
            b'n' => self.eat(b"null").map(|_| py.None().into_bound(py)),
            b't' => self.eat(b"true").map(|_| PyBool::new(py, true).to_owned().into_any()),
            b'f' => self.eat(b"false").map(|_| PyBool::new(py, false).to_owned().into_any()),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None, // NaN, Infinity and every error: Python's json decides
        }
    }

    fn object(&mut self, depth: u32) -> Option<Bound<'py, PyAny>> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        let d = PyDict::new(self.py);
        self.ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Some(d.into_any());
        }
        loop {
            if self.s.get(self.i) != Some(&b'"') {
                return None;
            }
            let k = self.string()?;
            self.ws();
            self.eat(b":")?;
            self.ws();
            let v = self.value(depth)?;
            d.set_item(k, v).ok()?;
            self.ws();
            match *self.s.get(self.i)? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                b'}' => {
                    self.i += 1;
                    return Some(d.into_any());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: u32) -> Option<Bound<'py, PyAny>> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        let l = PyList::empty(self.py);
        self.ws();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            return Some(l.into_any());
        }
        loop {
            let v = self.value(depth)?;
            l.append(v).ok()?;
            self.ws();
            match *self.s.get(self.i)? {
                b',' => {
                    self.i += 1;
                    self.ws();
                }
                b']' => {
                    self.i += 1;
                    return Some(l.into_any());
                }
                _ => return None,
            }
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let h = self.s.get(at..at + 4)?;
        let mut n = 0u32;
        for &c in h {
            n = n * 16 + (c as char).to_digit(16)?;
        }
        Some(n)
    }

    fn string(&mut self) -> Option<Bound<'py, PyString>> {
        let start = self.i + 1;
        let mut j = start;
        // The common case: no escape, no control character.
        loop {
            match *self.s.get(j)? {
                b'"' => {
                    self.i = j + 1;
                    return Some(PyString::new(self.py, &self.text[start..j]));
                }
                b'\\' => break,
                c if c < 0x20 => return None, // strict: a control character is an error
                _ => j += 1,
            }
        }
        let mut out = String::with_capacity(j - start + 16);
        out.push_str(&self.text[start..j]);
        loop {
            match *self.s.get(j)? {
                b'"' => {
                    self.i = j + 1;
                    return Some(PyString::new(self.py, &out));
                }
                b'\\' => {
                    let c = match *self.s.get(j + 1)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4(j + 2)?;
                            j += 6;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                // A surrogate pair; a lone surrogate is left to Python.
                                if self.s.get(j..j + 2)? != b"\\u" {
                                    return None;
                                }
                                let lo = self.hex4(j + 2)?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return None;
                                }
                                j += 6;
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            out.push(char::from_u32(cp)?); // None for a lone low surrogate
                            continue;
                        }
                        _ => return None,
                    };
                    out.push(c);
                    j += 2;
                }
                c if c < 0x20 => return None,
                _ => {
                    // Copy up to the next quote or backslash (whole UTF-8 sequences).
                    let from = j;
                    while let Some(&c) = self.s.get(j) {
                        if c == b'"' || c == b'\\' || c < 0x20 {
                            break;
                        }
                        j += 1;
                    }
                    out.push_str(&self.text[from..j]);
                }
            }
        }
    }

    fn number(&mut self) -> Option<Bound<'py, PyAny>> {
        let s = self.s;
        let start = self.i;
        let mut j = start;
        if s[j] == b'-' {
            j += 1;
        }
        match *s.get(j)? {
            b'0' => j += 1,
            b'1'..=b'9' => {
                while let Some(b'0'..=b'9') = s.get(j) {
                    j += 1;
                }
            }
            _ => return None, // "-Infinity", or an error
        }
        let int_end = j;
        let mut is_float = false;
        if s.get(j) == Some(&b'.') && matches!(s.get(j + 1), Some(b'0'..=b'9')) {
            is_float = true;
            j += 1;
            while let Some(b'0'..=b'9') = s.get(j) {
                j += 1;
            }
        }
        if let Some(b'e' | b'E') = s.get(j) {
            let mut k = j + 1;
            if let Some(b'+' | b'-') = s.get(k) {
                k += 1;
            }
            if matches!(s.get(k), Some(b'0'..=b'9')) {
                is_float = true;
                while let Some(b'0'..=b'9') = s.get(k) {
                    k += 1;
                }
                j = k;
            }
        }
        let text = &self.text[start..j];
        self.i = j;
        if is_float {
            let f: f64 = text.parse().ok()?;
            return Some(PyFloat::new(self.py, f).into_any());
        }
        if int_end - start > 18 {
            return None; // big integers (and the digit limit) are Python's
        }
        let n: i64 = text.parse().ok()?;
        Some(n.into_pyobject(self.py).ok()?.into_any())
    }
}

/// `json.dumps(value, separators=(",", ":"), ensure_ascii=False)` as UTF-8 for the plain
/// values listed in the module's documentation, or None.
pub fn dumps(value: &Bound<'_, PyAny>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    write(value, &mut out, 0)?;
    Some(out)
}

fn write(v: &Bound<'_, PyAny>, out: &mut Vec<u8>, depth: u32) -> Option<()> {
    if v.is_none() {
        out.extend_from_slice(b"null");
    } else if let Ok(s) = v.cast_exact::<PyString>() {
        write_str(&s.to_cow().ok()?, out);
    } else if let Ok(b) = v.cast_exact::<PyBool>() {
        out.extend_from_slice(if b.is_true() { b"true" } else { b"false" });
    } else if let Ok(i) = v.cast_exact::<PyInt>() {
        let n: i64 = i.extract().ok()?;
        out.extend_from_slice(n.to_string().as_bytes());
    } else if let Ok(f) = v.cast_exact::<PyFloat>() {
        if !f.value().is_finite() {
            return None; // refused (not JSON): Python raises the error
        }
        out.extend_from_slice(f.repr().ok()?.to_cow().ok()?.as_bytes());
    } else if let Ok(d) = v.cast_exact::<PyDict>() {
        if depth >= MAX_DEPTH {
            return None;
        }
        out.push(b'{');
        for (n, (k, val)) in d.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            let k = k.cast_exact::<PyString>().ok()?;
            write_str(&k.to_cow().ok()?, out);
            out.push(b':');
            write(&val, out, depth + 1)?;
        }
        out.push(b'}');
    } else if let Ok(l) = v.cast_exact::<PyList>() {
        write_array(l.iter(), out, depth)?;
    } else if let Ok(t) = v.cast_exact::<PyTuple>() {
        write_array(t.iter(), out, depth)?;
    } else {
        return None;
    }
    Some(())
}

/// A list or a tuple, as a JSON array.
fn write_array<'py>(items: impl Iterator<Item = Bound<'py, PyAny>>, out: &mut Vec<u8>, depth: u32) -> Option<()> {
    if depth >= MAX_DEPTH {
        return None;
    }
    out.push(b'[');
    for (n, item) in items.enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write(&item, out, depth + 1)?;
    }
    out.push(b']');
    Some(())
}

/// A string as the C encoder writes it with `ensure_ascii=False`: `"` and `\` escaped,
/// `\n \r \t \b \f` as such, other control characters as `\u00XX` (lower-case hex), all
/// else as it is.
fn write_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let b = s.as_bytes();
    let mut from = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            c if c < 0x20 => &[b'\\', b'u', b'0', b'0', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]],
            _ => continue,
        };
        out.extend_from_slice(&b[from..i]);
        out.extend_from_slice(esc);
        from = i + 1;
    }
    out.extend_from_slice(&b[from..]);
    out.push(b'"');
}
