//! Object Lock: Put/GetObjectLockConfiguration, Put/GetObjectRetention,
//! Put/GetObjectLegalHold, and the x-amz-object-lock-* headers of writes
//! and reads.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::DoozS3;
use super::convert::{millis, timestamp};
use super::errors::IntoS3;
use crate::engine::retention_from;
use crate::meta::{
    DefaultRetention, LockUpdate, ObjectLock, Retention, RetentionMode, RetentionPeriod,
};

fn mode_from(s: &str) -> S3Result<RetentionMode> {
    RetentionMode::parse(s).ok_or_else(|| {
        s3_error!(
            InvalidArgument,
            "Unknown object lock mode {s}: use GOVERNANCE or COMPLIANCE"
        )
    })
}

/// The three x-amz-object-lock-* headers of a PutObject, CopyObject or
/// CreateMultipartUpload; None when none was sent.
pub(super) fn requested_lock(
    mode: Option<&ObjectLockMode>,
    until: Option<&ObjectLockRetainUntilDate>,
    legal_hold: Option<&ObjectLockLegalHoldStatus>,
) -> S3Result<Option<ObjectLock>> {
    if mode.is_none() && until.is_none() && legal_hold.is_none() {
        return Ok(None);
    }
    let mode = mode.map(|m| mode_from(m.as_str())).transpose()?;
    let retention = retention_from(mode, until.map(millis)).s3()?;
    let legal_hold = match legal_hold.map(ObjectLockLegalHoldStatus::as_str) {
        None | Some(ObjectLockLegalHoldStatus::OFF) => false,
        Some(ObjectLockLegalHoldStatus::ON) => true,
        Some(other) => {
            return Err(s3_error!(
                InvalidArgument,
                "Unknown legal hold status {other}: use ON or OFF"
            ));
        }
    };
    Ok(Some(ObjectLock {
        retention,
        legal_hold,
    }))
}

/// The x-amz-object-lock-* headers of a GET or HEAD answer.
pub(super) struct LockHeaders {
    pub mode: Option<ObjectLockMode>,
    pub until: Option<ObjectLockRetainUntilDate>,
    pub legal_hold: Option<ObjectLockLegalHoldStatus>,
}

pub(super) fn lock_headers(lock: &ObjectLock) -> LockHeaders {
    LockHeaders {
        mode: lock
            .retention
            .map(|r| ObjectLockMode::from_static(r.mode.as_str())),
        until: lock.retention.map(|r| timestamp(r.until)),
        legal_hold: lock
            .legal_hold
            .then(|| ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON)),
    }
}

pub async fn put_object_lock_configuration(
    s: &DoozS3,
    req: S3Request<PutObjectLockConfigurationInput>,
) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    let cfg = i
        .object_lock_configuration
        .as_ref()
        .ok_or_else(|| s3_error!(MalformedXML, "an ObjectLockConfiguration is required"))?;
    if cfg
        .object_lock_enabled
        .as_ref()
        .map(ObjectLockEnabled::as_str)
        != Some(ObjectLockEnabled::ENABLED)
    {
        return Err(s3_error!(MalformedXML, "ObjectLockEnabled must be Enabled"));
    }
    let default_retention = match cfg.rule.as_ref().and_then(|r| r.default_retention.as_ref()) {
        None => None,
        Some(d) => {
            let mode = d
                .mode
                .as_ref()
                .ok_or_else(|| s3_error!(MalformedXML, "a DefaultRetention needs a Mode"))?;
            let period = match (d.days, d.years) {
                (Some(n), None) if n > 0 => RetentionPeriod::Days(n as u32),
                (None, Some(n)) if n > 0 => RetentionPeriod::Years(n as u32),
                (Some(_), Some(_)) => {
                    return Err(s3_error!(
                        MalformedXML,
                        "a DefaultRetention takes Days or Years, not both"
                    ));
                }
                (None, None) => {
                    return Err(s3_error!(
                        MalformedXML,
                        "a DefaultRetention needs Days or Years"
                    ));
                }
                _ => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "Default retention period must be a positive integer value"
                    ));
                }
            };
            Some(DefaultRetention {
                mode: mode_from(mode.as_str())?,
                period,
            })
        }
    };
    s.engine
        .put_object_lock_configuration(&who, &i.bucket, default_retention)
        .await
        .s3()?;
    Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
}

pub async fn get_object_lock_configuration(
    s: &DoozS3,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    let who = s.principal(&req).await?;
    let lock = s
        .engine
        .get_object_lock_configuration(&who, &req.input.bucket)
        .await
        .s3()?;
    let rule = lock.default_retention.map(|d| {
        let (days, years) = match d.period {
            RetentionPeriod::Days(n) => (i32::try_from(n).ok(), None),
            RetentionPeriod::Years(n) => (None, i32::try_from(n).ok()),
        };
        ObjectLockRule {
            default_retention: Some(s3s::dto::DefaultRetention {
                mode: Some(ObjectLockRetentionMode::from_static(d.mode.as_str())),
                days,
                years,
            }),
        }
    });
    Ok(S3Response::new(GetObjectLockConfigurationOutput {
        object_lock_configuration: Some(ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
            rule,
        }),
    }))
}

pub async fn put_object_retention(
    s: &DoozS3,
    req: S3Request<PutObjectRetentionInput>,
) -> S3Result<S3Response<PutObjectRetentionOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    let retention = match &i.retention {
        None => None,
        Some(r) => {
            let mode = r.mode.as_ref().map(|m| mode_from(m.as_str())).transpose()?;
            retention_from(mode, r.retain_until_date.as_ref().map(millis)).s3()?
        }
    };
    s.engine
        .update_object_lock(
            &who,
            &i.bucket,
            &i.key,
            i.version_id.as_deref(),
            LockUpdate::Retention {
                retention,
                bypass_governance: i.bypass_governance_retention.unwrap_or(false),
            },
        )
        .await
        .s3()?;
    Ok(S3Response::new(PutObjectRetentionOutput::default()))
}

pub async fn get_object_retention(
    s: &DoozS3,
    req: S3Request<GetObjectRetentionInput>,
) -> S3Result<S3Response<GetObjectRetentionOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    let lock = s
        .engine
        .object_lock_of(&who, &i.bucket, &i.key, i.version_id.as_deref())
        .await
        .s3()?;
    let Some(Retention { mode, until }) = lock.retention else {
        return Err(crate::s3::to_s3(
            crate::engine::EngineError::NoSuchObjectLockConfiguration(i.key.clone()),
        ));
    };
    Ok(S3Response::new(GetObjectRetentionOutput {
        retention: Some(ObjectLockRetention {
            mode: Some(ObjectLockRetentionMode::from_static(mode.as_str())),
            retain_until_date: Some(timestamp(until)),
        }),
    }))
}

pub async fn put_object_legal_hold(
    s: &DoozS3,
    req: S3Request<PutObjectLegalHoldInput>,
) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    let on = match i
        .legal_hold
        .as_ref()
        .and_then(|h| h.status.as_ref())
        .map(ObjectLockLegalHoldStatus::as_str)
    {
        Some(ObjectLockLegalHoldStatus::ON) => true,
        Some(ObjectLockLegalHoldStatus::OFF) => false,
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "a LegalHold needs a Status of ON or OFF"
            ));
        }
    };
    s.engine
        .update_object_lock(
            &who,
            &i.bucket,
            &i.key,
            i.version_id.as_deref(),
            LockUpdate::LegalHold(on),
        )
        .await
        .s3()?;
    Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
}

pub async fn get_object_legal_hold(
    s: &DoozS3,
    req: S3Request<GetObjectLegalHoldInput>,
) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
    let who = s.principal(&req).await?;
    let i = &req.input;
    let lock = s
        .engine
        .object_lock_of(&who, &i.bucket, &i.key, i.version_id.as_deref())
        .await
        .s3()?;
    let status = if lock.legal_hold {
        ObjectLockLegalHoldStatus::ON
    } else {
        ObjectLockLegalHoldStatus::OFF
    };
    Ok(S3Response::new(GetObjectLegalHoldOutput {
        legal_hold: Some(ObjectLockLegalHold {
            status: Some(ObjectLockLegalHoldStatus::from_static(status)),
        }),
    }))
}
