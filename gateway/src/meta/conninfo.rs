//! PostgreSQL connection strings, both forms libpq accepts — a URL
//! (`postgres://user:pass@host/db?key=value`) and `key=value` pairs
//! (values optionally single-quoted with `\'` and `\\` escapes) — taken
//! apart just enough to redact the password and to pull out the TLS
//! settings tokio-postgres does not parse itself (`sslrootcert`,
//! `sslmode=verify-ca|verify-full`).

const REDACTED: &str = "<redacted>";

/// One `key=value` of the keyword form, with where it sits in the string.
struct Pair<'a> {
    key: &'a str,
    value: String,
    /// From the key's first byte to the value's last.
    span: std::ops::Range<usize>,
    value_start: usize,
}

fn keyword_pairs(s: &str) -> Vec<Pair<'_>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' {
            i += 1;
        }
        let key = &s[start..i];
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            // Not a pair: libpq would refuse it; leave it for the driver.
            continue;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let value_start = i;
        let mut value = Vec::new();
        if i < b.len() && b[i] == b'\'' {
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                value.push(b[i]);
                i += 1;
            }
            i = (i + 1).min(b.len());
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                value.push(b[i]);
                i += 1;
            }
        }
        out.push(Pair {
            key,
            value: String::from_utf8_lossy(&value).into_owned(),
            span: start..i,
            value_start,
        });
    }
    out
}

fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// `%XX` decoding of a URL query value (invalid escapes stay as they are).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The connection string with its password replaced by `<redacted>`: the
/// password of a URL's user info, a `password=` query parameter, or a
/// `password = value` pair.
pub fn redact_password(conninfo: &str) -> String {
    if let Some((scheme, rest)) = conninfo.split_once("://")
        && is_url(conninfo)
    {
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let authority = match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:{REDACTED}@{host}"),
                None => format!("{userinfo}@{host}"),
            },
            None => authority.to_owned(),
        };
        let tail = match tail.split_once('?') {
            Some((path, query)) => {
                let query: Vec<String> = query
                    .split('&')
                    .map(|kv| match kv.split_once('=') {
                        Some((k, _)) if k.eq_ignore_ascii_case("password") => {
                            format!("{k}={REDACTED}")
                        }
                        _ => kv.to_owned(),
                    })
                    .collect();
                format!("{path}?{}", query.join("&"))
            }
            None => tail.to_owned(),
        };
        return format!("{scheme}://{authority}{tail}");
    }
    let mut out = conninfo.to_owned();
    // Back to front, so earlier spans stay valid.
    for p in keyword_pairs(conninfo).iter().rev() {
        if p.key.eq_ignore_ascii_case("password") {
            out.replace_range(p.value_start..p.span.end, REDACTED);
        }
    }
    out
}

/// Removes the named parameters; returns the rest of the connection string
/// and the removed `(key, value)` pairs (values unquoted / decoded).
pub fn take_params(conninfo: &str, keys: &[&str]) -> (String, Vec<(String, String)>) {
    let wanted = |k: &str| keys.iter().any(|w| w.eq_ignore_ascii_case(k));
    let mut taken = Vec::new();
    if is_url(conninfo) {
        let Some((base, query)) = conninfo.split_once('?') else {
            return (conninfo.to_owned(), taken);
        };
        let mut kept = Vec::new();
        for kv in query.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            if wanted(k) {
                taken.push((k.to_ascii_lowercase(), percent_decode(v)));
            } else {
                kept.push(kv);
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, taken);
    }
    let mut out = conninfo.to_owned();
    for p in keyword_pairs(conninfo).iter().rev() {
        if wanted(p.key) {
            taken.push((p.key.to_ascii_lowercase(), p.value.clone()));
            out.replace_range(p.span.clone(), "");
        }
    }
    taken.reverse();
    (out, taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_in_every_form() {
        assert_eq!(
            redact_password("postgres://dooz:s3cr%40t@db:5432/dooz?sslmode=require"),
            "postgres://dooz:<redacted>@db:5432/dooz?sslmode=require"
        );
        assert_eq!(
            redact_password("postgresql://db/dooz?user=dooz&password=hunter2&x=1"),
            "postgresql://db/dooz?user=dooz&password=<redacted>&x=1"
        );
        assert_eq!(
            redact_password("host=db password = 'it\\'s secret' user=dooz"),
            "host=db password = <redacted> user=dooz"
        );
        assert_eq!(
            redact_password("host=db PASSWORD=plain dbname=x"),
            "host=db PASSWORD=<redacted> dbname=x"
        );
        assert_eq!(redact_password("host=db user=x"), "host=db user=x");
        assert_eq!(redact_password("postgres://db/x"), "postgres://db/x");
    }

    #[test]
    fn tls_params_are_taken_out() {
        let (rest, taken) = take_params(
            "host=db sslmode=verify-full sslrootcert='/etc/ca file.pem' user=x",
            &["sslmode", "sslrootcert"],
        );
        assert_eq!(
            rest.split_whitespace().collect::<Vec<_>>(),
            ["host=db", "user=x"]
        );
        assert_eq!(
            taken,
            [
                ("sslmode".to_owned(), "verify-full".to_owned()),
                ("sslrootcert".to_owned(), "/etc/ca file.pem".to_owned())
            ]
        );
        let (rest, taken) = take_params(
            "postgres://u@db/x?sslmode=verify-ca&application_name=a&sslrootcert=%2Fca.pem",
            &["sslmode", "sslrootcert"],
        );
        assert_eq!(rest, "postgres://u@db/x?application_name=a");
        assert_eq!(taken[1], ("sslrootcert".to_owned(), "/ca.pem".to_owned()));
    }
}
