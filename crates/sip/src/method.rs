//! SIP method names.

use crate::Method;

impl<'a> Method<'a> {
    /// Classify a method token. Matching is case-sensitive because RFC 3261 method names are:
    /// `invite` is an (odd) extension method, not INVITE, and a dialog tracker must not merge
    /// them.
    #[inline]
    pub fn from_bytes(b: &'a [u8]) -> Method<'a> {
        match (b.len(), b.first()) {
            (6, Some(b'I')) if b == b"INVITE" => Method::Invite,
            (3, Some(b'A')) if b == b"ACK" => Method::Ack,
            (3, Some(b'B')) if b == b"BYE" => Method::Bye,
            (6, Some(b'C')) if b == b"CANCEL" => Method::Cancel,
            (8, Some(b'R')) if b == b"REGISTER" => Method::Register,
            (7, Some(b'O')) if b == b"OPTIONS" => Method::Options,
            (5, Some(b'P')) if b == b"PRACK" => Method::Prack,
            (9, Some(b'S')) if b == b"SUBSCRIBE" => Method::Subscribe,
            (6, Some(b'N')) if b == b"NOTIFY" => Method::Notify,
            (7, Some(b'P')) if b == b"PUBLISH" => Method::Publish,
            (4, Some(b'I')) if b == b"INFO" => Method::Info,
            (5, Some(b'R')) if b == b"REFER" => Method::Refer,
            (7, Some(b'M')) if b == b"MESSAGE" => Method::Message,
            (6, Some(b'U')) if b == b"UPDATE" => Method::Update,
            _ => Method::Other(b),
        }
    }

    /// The method token as it appears on the wire.
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Method::Invite => b"INVITE",
            Method::Ack => b"ACK",
            Method::Bye => b"BYE",
            Method::Cancel => b"CANCEL",
            Method::Register => b"REGISTER",
            Method::Options => b"OPTIONS",
            Method::Prack => b"PRACK",
            Method::Subscribe => b"SUBSCRIBE",
            Method::Notify => b"NOTIFY",
            Method::Publish => b"PUBLISH",
            Method::Info => b"INFO",
            Method::Refer => b"REFER",
            Method::Message => b"MESSAGE",
            Method::Update => b"UPDATE",
            Method::Other(b) => b,
        }
    }

    /// The method as text, for CDRs and logs. Methods that come out of [`crate::parse`] are
    /// always token characters (ASCII); only a hand-built `Other` with non-UTF-8 bytes gives
    /// `"?"`.
    pub fn as_str(&self) -> &'a str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("?")
    }
}

impl std::fmt::Display for Method<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_methods() {
        for m in [
            Method::Invite,
            Method::Ack,
            Method::Bye,
            Method::Cancel,
            Method::Register,
            Method::Options,
            Method::Prack,
            Method::Subscribe,
            Method::Notify,
            Method::Publish,
            Method::Info,
            Method::Refer,
            Method::Message,
            Method::Update,
        ] {
            assert_eq!(Method::from_bytes(m.as_bytes()), m);
            assert_eq!(m.to_string().as_bytes(), m.as_bytes());
        }
    }

    #[test]
    fn unknown_and_lowercase_are_other() {
        assert_eq!(Method::from_bytes(b"invite"), Method::Other(b"invite"));
        assert_eq!(Method::from_bytes(b"FOO"), Method::Other(b"FOO"));
        assert_eq!(Method::Other(b"FOO").as_str(), "FOO");
        assert_eq!(Method::Other(&[0xff]).as_str(), "?");
        assert_eq!(Method::from_bytes(b""), Method::Other(b""));
    }
}
