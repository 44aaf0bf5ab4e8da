//! A scanner for key material in text (logs, events, status, metrics): a
//! key must appear in none of the forms a program might print it in.

/// The bytes of a hex string.
///
/// # Panics
/// If `hex` is not hex.
pub fn bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// `data` in base64 with `alphabet`, padded with `=` when `pad`.
pub fn base64(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(alphabet[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
        if pad {
            for _ in chunk.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

/// Every text form of a key that must never be printed.
pub fn forbidden_forms(hex: &str) -> Vec<String> {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let raw = bytes(hex);
    vec![
        hex.to_lowercase(),
        hex.to_uppercase(),
        base64(&raw, STD, true),
        base64(&raw, STD, false),
        base64(&raw, URL, false),
        // A Debug-printed byte array, e.g. `[141, 31, 10, ...]`.
        format!("{:?}", &raw[..8]).trim_end_matches(']').to_string(),
    ]
}

/// Where a form of a key appears in `text`, if anywhere.
pub fn find_leak(text: &str, keys: &[&str]) -> Option<String> {
    for k in keys {
        for form in forbidden_forms(k) {
            if let Some(at) = text.find(&form) {
                let line = text[..at].lines().count();
                return Some(format!("{form:?} at line {line}"));
            }
        }
    }
    None
}
