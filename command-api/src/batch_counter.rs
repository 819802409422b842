//! Counts a batch's items as its bytes arrive, so that a batch of more than
//! [`MAX_BATCH`](sextant_application::sends::MAX_BATCH) items is refused
//! at the item past the limit, while the rest of it is still on the wire,
//! instead of after up to 4 MiB have been read.
//!
//! The counter is a byte scanner, not a parser: it follows strings (and
//! their escapes) and nesting just far enough to know when an element of
//! the batch's array (`{"sends": [...]}`, the array under the endpoint's
//! key at the top level) begins. Whether the body is valid JSON is for the
//! parser that reads it afterwards; the counter only never under-counts a
//! body that is.

/// Follows a body's bytes, counting the elements of the top-level
/// object's array under `key`.
#[derive(Debug)]
pub struct ItemCounter {
    key: &'static [u8],
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// The next string at depth 1 is a key of the top-level object.
    key_expected: bool,
    /// The key being read, while it is read (its first 64 bytes: longer
    /// than any batch key, a longer key never matches).
    reading_key: Option<Vec<u8>>,
    last_key_is_batch: bool,
    /// The array open at depth 2 is the batch's.
    in_batch: bool,
    /// An element of the batch may begin at the next value byte.
    element_expected: bool,
    items: usize,
}

impl ItemCounter {
    pub fn new(key: &'static str) -> Self {
        Self {
            key: key.as_bytes(),
            depth: 0,
            in_string: false,
            escaped: false,
            key_expected: false,
            reading_key: None,
            last_key_is_batch: false,
            in_batch: false,
            element_expected: false,
            items: 0,
        }
    }

    /// How many of the batch's elements have begun so far.
    pub fn items(&self) -> usize {
        self.items
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.in_string {
                self.string_byte(b);
                continue;
            }
            if self.element_expected && !b.is_ascii_whitespace() && b != b']' {
                self.items += 1;
                self.element_expected = false;
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    if self.depth == 1 && self.key_expected {
                        self.key_expected = false;
                        self.reading_key = Some(Vec::new());
                    }
                }
                b'{' | b'[' => {
                    self.depth += 1;
                    match self.depth {
                        1 => self.key_expected = b == b'{',
                        2 => {
                            self.in_batch = b == b'[' && self.last_key_is_batch;
                            self.element_expected = self.in_batch;
                        }
                        _ => {}
                    }
                }
                b'}' | b']' => {
                    if self.depth == 2 {
                        self.in_batch = false;
                        self.element_expected = false;
                    }
                    self.depth = self.depth.saturating_sub(1);
                }
                b',' => match self.depth {
                    1 => self.key_expected = true,
                    2 => self.element_expected = self.in_batch,
                    _ => {}
                },
                _ => {}
            }
        }
    }

    fn string_byte(&mut self, b: u8) {
        if self.escaped {
            self.escaped = false;
        } else if b == b'\\' {
            self.escaped = true;
        } else if b == b'"' {
            self.in_string = false;
            if let Some(read) = self.reading_key.take() {
                self.last_key_is_batch = read == self.key;
            }
            return;
        }
        if let Some(read) = self.reading_key.as_mut().filter(|r| r.len() < 64) {
            read.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(body: &str, key: &'static str) -> usize {
        let mut counter = ItemCounter::new(key);
        counter.feed(body.as_bytes());
        counter.items()
    }

    #[test]
    fn the_elements_of_the_batch_array_are_counted_and_nothing_else() {
        assert_eq!(
            count(
                r#"{"sends": [{"a": [1, 2, 3]}, {"b": {"c": [4]}}, 5]}"#,
                "sends"
            ),
            3
        );
        assert_eq!(count(r#"{"sends": []}"#, "sends"), 0);
        assert_eq!(count(r#"{"sends":[ ]}"#, "sends"), 0);
        // Another key's array, a single item's own arrays, an array body.
        assert_eq!(count(r#"{"outcomes": [1, 2]}"#, "sends"), 0);
        assert_eq!(count(r#"{"lead_ref": "x", "tags": [1, 2, 3]}"#, "sends"), 0);
        assert_eq!(count(r#"[1, 2, 3]"#, "sends"), 0);
        assert_eq!(
            count(r#"{"note": "x", "outcomes": [{}, {}]}"#, "outcomes"),
            2
        );
    }

    #[test]
    fn strings_with_brackets_commas_quotes_and_escapes_do_not_count() {
        let body = r#"{"sends": [{"s": "a, [b], {c}, \"d\", \\"}, {"s": "\\\"]"}]}"#;
        assert_eq!(count(body, "sends"), 2);
        // A key that only looks like the batch's.
        assert_eq!(count(r#"{"sends\"": [1, 2]}"#, "sends"), 0);
        assert_eq!(count(r#"{"x": "sends", "y": [1, 2]}"#, "sends"), 0);
    }

    #[test]
    fn a_body_split_anywhere_counts_the_same() {
        let body = serde_json::to_string(&serde_json::json!({
            "sends": (0..40).map(|i| serde_json::json!({ "n": i, "s": "a, [\"b\"]" })).collect::<Vec<_>>()
        }))
        .expect("a body");
        for split in 0..body.len() {
            let mut counter = ItemCounter::new("sends");
            counter.feed(&body.as_bytes()[..split]);
            counter.feed(&body.as_bytes()[split..]);
            assert_eq!(counter.items(), 40, "split at {split}");
        }
    }
}
