//! memcached's request-line tokenizer: split on single spaces (only `' '`),
//! at most [`MAX_TOKENS`] - 1 tokens, the unprocessed remainder kept for
//! multi-key gets. Token counts below follow memcached's convention of
//! counting one extra terminal token, so checks read like `proto_text.c`.

/// memcached's `MAX_TOKENS` (including the terminal token).
pub const MAX_TOKENS: usize = 24;

/// The tokens of one request line, borrowed from the input.
pub struct Tokens<'a> {
    line: &'a [u8],
    spans: [(u32, u32); MAX_TOKENS - 1],
    count: usize,
    rest: usize,
}

impl<'a> Tokens<'a> {
    /// Tokenizes `line` (without its line terminator; already cut at a NUL).
    pub fn new(line: &'a [u8]) -> Self {
        let mut t = Tokens {
            line,
            spans: [(0, 0); MAX_TOKENS - 1],
            count: 0,
            rest: line.len(),
        };
        let mut s = 0usize;
        let mut e = 0usize;
        while e < line.len() {
            if line[e] == b' ' {
                if s != e {
                    t.spans[t.count] = (s as u32, e as u32);
                    t.count += 1;
                    if t.count == MAX_TOKENS - 1 {
                        t.rest = e + 1;
                        return t;
                    }
                }
                s = e + 1;
            }
            e += 1;
        }
        if s != e {
            t.spans[t.count] = (s as u32, e as u32);
            t.count += 1;
        }
        t
    }

    /// memcached's `ntokens`: real tokens plus the terminal one.
    #[inline]
    pub fn ntokens(&self) -> usize {
        self.count + 1
    }

    /// Token `i`, or an empty slice past the last one.
    #[inline]
    pub fn get(&self, i: usize) -> &'a [u8] {
        if i < self.count {
            let (s, e) = self.spans[i];
            &self.line[s as usize..e as usize]
        } else {
            &[]
        }
    }

    /// The line from the start of token `i` to its end (tokens `i..` and the
    /// unprocessed remainder), empty if there is no token `i`.
    #[inline]
    pub fn from(&self, i: usize) -> &'a [u8] {
        if i < self.count {
            &self.line[self.spans[i].0 as usize..]
        } else {
            &self.line[self.rest.min(self.line.len())..]
        }
    }

    /// Number of real tokens.
    #[inline]
    pub fn count(&self) -> usize {
        self.count
    }
}

/// Iterator over space-separated, non-empty words of a borrowed line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Words<'a> {
    rest: &'a [u8],
}

impl<'a> Words<'a> {
    /// Words of `s`.
    pub const fn new(s: &'a [u8]) -> Self {
        Words { rest: s }
    }

    /// The unconsumed remainder.
    pub fn remainder(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a [u8];
    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let mut i = 0;
        while i < self.rest.len() && self.rest[i] == b' ' {
            i += 1;
        }
        if i == self.rest.len() {
            self.rest = &[];
            return None;
        }
        let start = i;
        while i < self.rest.len() && self.rest[i] != b' ' {
            i += 1;
        }
        let word = &self.rest[start..i];
        self.rest = &self.rest[i..];
        Some(word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_spaces_only() {
        let t = Tokens::new(b"  get a\tb  c ");
        assert_eq!(t.ntokens(), 4);
        assert_eq!(t.get(0), b"get");
        assert_eq!(t.get(1), b"a\tb");
        assert_eq!(t.get(2), b"c");
        assert_eq!(t.get(3), b"");
        assert_eq!(t.from(1), b"a\tb  c ");
    }

    #[test]
    fn caps_tokens_and_keeps_rest() {
        let line = b"get 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25";
        let t = Tokens::new(line);
        assert_eq!(t.ntokens(), MAX_TOKENS);
        assert_eq!(t.get(22), b"22");
        assert_eq!(t.from(23), b"23 24 25");
        let w: usize = Words::new(t.from(1)).count();
        assert_eq!(w, 25);
    }

    #[test]
    fn empty_line() {
        assert_eq!(Tokens::new(b"").ntokens(), 1);
        assert_eq!(Tokens::new(b"   ").ntokens(), 1);
    }
}
