//! `*` (any run of characters, including none and `/`) and `?` (exactly one
//! character) as IAM matches actions, resources, StringLike and ArnLike.

/// Whether `text` matches `pattern`; `fold` compares ASCII case-insensitively
/// (action names).
pub fn matches(pattern: &str, text: &str, fold: bool) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    // The last `*` seen and the text position it was tried against.
    let mut star: Option<(usize, usize)> = None;
    let eq = |a: u8, b: u8| {
        if fold {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
            continue;
        }
        if pi < p.len() && p[pi] == b'?' {
            pi += 1;
            ti += utf8_len(t[ti]);
            continue;
        }
        if pi < p.len() && eq(p[pi], t[ti]) {
            pi += 1;
            ti += 1;
            continue;
        }
        match star {
            Some((sp, st)) => {
                // Let the last `*` swallow one more character.
                let next = st + utf8_len(t[st]);
                star = Some((sp, next));
                pi = sp + 1;
                ti = next;
            }
            None => return false,
        }
    }
    p[pi.min(p.len())..].iter().all(|&b| b == b'*')
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// ArnLike / ArnEquals: the six colon-separated parts are matched one by
/// one (wildcards do not cross a colon, except in the last part).
pub fn arn_matches(pattern: &str, arn: &str) -> bool {
    let pp: Vec<&str> = pattern.splitn(6, ':').collect();
    let ap: Vec<&str> = arn.splitn(6, ':').collect();
    if pp.len() != 6 || ap.len() != 6 {
        return pattern == arn;
    }
    pp.iter().zip(&ap).all(|(p, a)| matches(p, a, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let cases = [
            ("*", "", true),
            ("*", "anything/at/all", true),
            ("a*", "abc", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "aéc", true),
            ("builds/*", "builds/x/y.tar", true),
            ("builds/*", "build/x", false),
            ("*.log", "a/b.log", true),
            ("*.log", "a/b.log.gz", false),
            ("a**b", "ab", true),
            ("exact", "exact", true),
            ("exact", "Exact", false),
            ("", "", true),
            ("", "x", false),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b*", "xxbxxaxx", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(matches(p, t, false), want, "{p:?} vs {t:?}");
        }
        assert!(matches("s3:get*", "S3:GetObject", true));
        assert!(!matches("s3:get*", "S3:GetObject", false));
    }

    #[test]
    fn arns() {
        assert!(arn_matches(
            "arn:dooz:iam::*:user/ci-*",
            "arn:dooz:iam::acme:user/ci-builds"
        ));
        assert!(!arn_matches(
            "arn:dooz:iam::*:user/ci-*",
            "arn:dooz:iam::acme:root"
        ));
        // A wildcard in one part does not eat the colon into the next.
        assert!(!arn_matches(
            "arn:*:iam::acme:root",
            "arn:dooz:x:iam::acme:root"
        ));
        assert!(arn_matches(
            "arn:aws:s3:::b/*",
            "arn:aws:s3:::b/k:with:colons"
        ));
    }
}
