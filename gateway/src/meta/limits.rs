//! Throttling overrides (`limit_overrides`): one row per tenant, access key
//! or bucket whose limits differ from the `[limits]` defaults, the override
//! as JSON the gateway validated and opaque here.

use super::MetaResult;
use super::sql::{Cols, Tx, params};

/// One override as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitRow {
    /// `tenant`, `key` or `bucket`.
    pub scope: String,
    /// Tenant id, access key or bucket name.
    pub subject: String,
    pub body: String,
}

const LIST: &str = "SELECT scope, subject, body FROM limit_overrides ORDER BY scope, subject";
const SET: &str = "INSERT INTO limit_overrides (scope, subject, body) VALUES ($1, $2, $3) \
     ON CONFLICT (scope, subject) DO UPDATE SET body = $3";
const DELETE: &str = "DELETE FROM limit_overrides WHERE scope = $1 AND subject = $2";

pub(crate) async fn list(tx: &mut dyn Tx) -> MetaResult<Vec<LimitRow>> {
    tx.query(LIST, &[])
        .await?
        .iter()
        .map(|row| {
            let c = Cols::new(row, "limit_overrides");
            Ok(LimitRow {
                scope: c.text(0)?,
                subject: c.text(1)?,
                body: c.text(2)?,
            })
        })
        .collect()
}

/// Stores (Some) or removes (None) an override; whether a row was removed.
pub(crate) async fn set(
    tx: &mut dyn Tx,
    scope: &str,
    subject: &str,
    body: Option<&str>,
) -> MetaResult<bool> {
    Ok(match body {
        Some(b) => tx.execute(SET, &params![scope, subject, b]).await? > 0,
        None => tx.execute(DELETE, &params![scope, subject]).await? > 0,
    })
}
