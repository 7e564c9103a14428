//! Engine errors as S3 errors: the code, the status and a message a user can act on.

use s3s::{S3Error, S3ErrorCode};

use crate::engine::EngineError;

pub fn to_s3(e: EngineError) -> S3Error {
    use S3ErrorCode as C;
    let code = match &e {
        EngineError::NoSuchBucket(_) => C::NoSuchBucket,
        EngineError::NoSuchKey(_) => C::NoSuchKey,
        EngineError::NoSuchVersion(_) => C::NoSuchVersion,
        EngineError::NoSuchUpload(_) => C::NoSuchUpload,
        EngineError::DeleteMarker {
            addressed: false, ..
        } => C::NoSuchKey,
        EngineError::DeleteMarker {
            addressed: true, ..
        } => C::MethodNotAllowed,
        EngineError::ObjectLocked(_) => C::AccessDenied,
        EngineError::InvalidBucketState(_) => C::InvalidBucketState,
        EngineError::NoSuchObjectLockConfiguration(_) => {
            C::Custom("NoSuchObjectLockConfiguration".into())
        }
        EngineError::ObjectLockConfigurationNotFound(_) => {
            C::Custom("ObjectLockConfigurationNotFoundError".into())
        }
        EngineError::NotImplemented(_) => C::NotImplemented,
        EngineError::AccessDenied(_) => C::AccessDenied,
        EngineError::BucketAlreadyExists(_) => C::BucketAlreadyExists,
        EngineError::BucketAlreadyOwnedByYou(_) => C::BucketAlreadyOwnedByYou,
        EngineError::BucketNotEmpty(_) => C::BucketNotEmpty,
        EngineError::InvalidBucketName(_) => C::InvalidBucketName,
        EngineError::InvalidArgument(_) => C::InvalidArgument,
        EngineError::InvalidRange { .. } => C::InvalidRange,
        EngineError::EntityTooLarge { .. } => C::EntityTooLarge,
        EngineError::KeyTooLong { .. } => C::KeyTooLongError,
        EngineError::MetadataTooLarge => C::MetadataTooLarge,
        EngineError::PreconditionFailed => C::PreconditionFailed,
        EngineError::NotModified => C::NotModified,
        EngineError::InvalidPart(_) => C::InvalidPart,
        EngineError::InvalidPartOrder => C::InvalidPartOrder,
        EngineError::EntityTooSmall(_) => C::EntityTooSmall,
        EngineError::MalformedXml(_) => C::MalformedXML,
        EngineError::InvalidTag(_) => C::InvalidTag,
        EngineError::BadRequest(_) => C::Custom("BadRequest".into()),
        EngineError::NoSuchTagSet(_) => C::NoSuchTagSet,
        EngineError::NoSuchLifecycleConfiguration(_) => C::NoSuchLifecycleConfiguration,
        EngineError::NoSuchCorsConfiguration(_) => C::NoSuchCORSConfiguration,
        EngineError::InvalidRequest(_) => C::InvalidRequest,
        EngineError::InvalidPartNumber => C::Custom("InvalidPartNumber".into()),
        EngineError::BadDigest(_) => C::BadDigest,
        EngineError::InvalidDigest(_) => C::InvalidDigest,
        EngineError::IncompleteBody { .. } => C::IncompleteBody,
        EngineError::BodyRead(_) => C::IncompleteBody,
        EngineError::Unavailable(_) => C::ServiceUnavailable,
        EngineError::SlowDown(_) => C::SlowDown,
        EngineError::Corrupt(_) | EngineError::Internal(_) => C::InternalError,
    };
    match &e {
        // Internal detail stays in the log; the client gets a stable message.
        EngineError::Corrupt(m) => {
            tracing::error!(error = %m, "refusing to serve data that failed verification");
            S3Error::with_message(
                code,
                "Stored data failed an integrity check; it was not served.",
            )
        }
        EngineError::Internal(m) => {
            tracing::error!(error = %m, "internal error");
            S3Error::with_message(code, "We encountered an internal error. Please try again.")
        }
        EngineError::Unavailable(m) => {
            tracing::warn!(error = %m, "dependency unavailable");
            S3Error::with_message(
                code,
                "Please reduce your request rate or retry: a storage dependency is unavailable.",
            )
        }
        EngineError::InvalidPartNumber => {
            let mut err = S3Error::with_message(code, e.to_string());
            err.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
            err
        }
        EngineError::DeleteMarker {
            key,
            version_id,
            last_modified,
            addressed,
        } => {
            let message = if *addressed {
                "The specified method is not allowed against this resource.".to_owned()
            } else {
                format!("The specified key does not exist: {key}")
            };
            let mut err = S3Error::with_message(code, message);
            let mut headers = http::HeaderMap::new();
            headers.insert(
                "x-amz-delete-marker",
                http::HeaderValue::from_static("true"),
            );
            if let Ok(v) = http::HeaderValue::from_str(version_id) {
                headers.insert("x-amz-version-id", v);
            }
            if let Ok(v) =
                http::HeaderValue::from_str(&super::convert::http_date_of(*last_modified))
            {
                headers.insert(http::header::LAST_MODIFIED, v);
            }
            err.set_headers(headers);
            err
        }
        EngineError::NoSuchObjectLockConfiguration(_)
        | EngineError::ObjectLockConfigurationNotFound(_)
        | EngineError::NoSuchTagSet(_)
        | EngineError::NoSuchLifecycleConfiguration(_)
        | EngineError::NoSuchCorsConfiguration(_) => {
            let mut err = S3Error::with_message(code, e.to_string());
            err.set_status_code(http::StatusCode::NOT_FOUND);
            err
        }
        EngineError::BadRequest(_) => {
            let mut err = S3Error::with_message(code, e.to_string());
            err.set_status_code(http::StatusCode::BAD_REQUEST);
            err
        }
        _ => S3Error::with_message(code, e.to_string()),
    }
}

/// `?` on engine results inside handlers.
pub trait IntoS3<T> {
    fn s3(self) -> s3s::S3Result<T>;
}

impl<T> IntoS3<T> for Result<T, EngineError> {
    fn s3(self) -> s3s::S3Result<T> {
        self.map_err(to_s3)
    }
}
