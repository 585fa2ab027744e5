//! A tenant's WhatsApp channel, as the domain sees it.

/// Secrets shorter than this show no characters at all: four of them would give away too
/// much of a short secret (all of a four-character one).
pub const HINT_MIN_SECRET_CHARS: usize = 12;

/// What is kept in clear of a secret, for display: its last four characters when it is
/// long enough that they reveal little, otherwise nothing.
pub fn secret_hint(secret: &str) -> String {
    let chars = secret.chars().count();
    if chars < HINT_MIN_SECRET_CHARS {
        return String::new();
    }
    secret.chars().skip(chars - 4).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_long_secrets_keep_a_hint() {
        assert_eq!(secret_hint("abcd"), "");
        assert_eq!(secret_hint("eleven-char"), "");
        assert_eq!(secret_hint("twelve-chars"), "hars");
        assert_eq!(secret_hint("EAAG-a-long-access-token-9f3k"), "9f3k");
        assert_eq!(secret_hint("éééééééé€xyz"), "€xyz", "characters, not bytes");
    }
}
