//! Free TCP ports on 127.0.0.1 for the servers a test starts.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port nothing listens on right now and this process has not handed out
/// before, whose port + 10000 (SeaweedFS's gRPC convention) is free too. Both
/// stay below Linux's ephemeral range (32768+): a gRPC port up there can be
/// taken by any outgoing connection between the check and SeaweedFS's bind.
pub fn free_port() -> u16 {
    loop {
        let candidate: u16 = rand::random_range(10000..22000);
        if TcpListener::bind(("127.0.0.1", candidate)).is_err()
            || TcpListener::bind(("127.0.0.1", candidate + 10000)).is_err()
        {
            continue;
        }
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(candidate) {
            return candidate;
        }
    }
}
