//! Files in an object store: `s3://bucket/key` on AWS S3 or any store that speaks its API. (A lake can live in a
//! bucket too: see [`crate::lake`].)
//!
//! The credentials come from the source's connection, in Airflow's `aws` connection format: `login` is the access
//! key id, `password` the secret key, and `extra` may hold `region_name`, `endpoint_url` (MinIO, Ceph, R2, …) and
//! `aws_session_token`. Without a connection, the usual `AWS_*` environment variables of the worker apply.
//! Requests that fail with 429 or 5xx are retried with backoff by the client.

use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{OpsError, Result};
use crate::runtime::block_on;
use crate::task::NamedConnection;

/// The URL scheme of S3 objects and of a lake in a bucket.
pub(crate) const S3_SCHEME: &str = "s3://";

/// The bucket's client and the key of the object at `url` (`s3://bucket/key`), or why there is none; errors name
/// the connection used.
fn locate(url: &str, connection: Option<NamedConnection<'_>>) -> Result<(AmazonS3, ObjectPath, String)> {
    let failed = |message: String| OpsError::Read { path: url.into(), message };
    let (bucket, key) = url
        .strip_prefix(S3_SCHEME)
        .and_then(|rest| rest.split_once('/'))
        .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty())
        .ok_or_else(|| failed("expected s3://BUCKET/KEY".to_owned()))?;
    let key = ObjectPath::parse(key).map_err(|e| failed(format!("invalid object key: {e}")))?;
    let through = connection.map(|(id, _)| format!(" (connection {id:?})")).unwrap_or_default();
    let store = s3_store(bucket, connection).map_err(|e| failed(format!("{e}{through}")))?;
    Ok((store, key, through))
}

/// The whole object at `url`.
pub(crate) fn fetch(url: &str, connection: Option<NamedConnection<'_>>) -> Result<Vec<u8>> {
    let failed = |message: String| OpsError::Read { path: url.into(), message };
    let (store, key, through) = locate(url, connection)?;
    match get(&store, &key)? {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(OpsError::FileNotFound(url.into())),
        Err(e) => Err(failed(format!("{e}{through}"))),
    }
}

/// Whether the object at `url` exists or, for a URL ending in `/`, any object under that prefix (a sensor's poke).
pub(crate) fn exists(url: &str, connection: Option<NamedConnection<'_>>) -> Result<bool> {
    let (store, key, through) = locate(url, connection)?;
    let found = block_on(async {
        if url.ends_with('/') {
            return store.list(Some(&key)).try_next().await.map(|first| first.is_some());
        }
        match store.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    })?;
    found.map_err(|e| OpsError::Read { path: url.into(), message: format!("{e}{through}") })
}

/// The content of the object at `key`; `None` if there is none.
pub(crate) fn get(store: &AmazonS3, key: &ObjectPath) -> Result<Result<Option<Vec<u8>>, object_store::Error>> {
    let fetched = block_on(async { store.get(key).await?.bytes().await })?;
    Ok(match fetched {
        Ok(bytes) => Ok(Some(bytes.into())),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    })
}

/// A client of `bucket`, configured by the `AWS_*` environment variables and then by `connection`, if any.
pub(crate) fn s3_store(bucket: &str, connection: Option<NamedConnection<'_>>) -> Result<AmazonS3, String> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some((_, conn)) = connection {
        if let Some(login) = conn.login.as_deref().filter(|l| !l.is_empty()) {
            builder = builder.with_access_key_id(login);
        }
        if let Some(secret) = conn.password.as_deref().filter(|p| !p.is_empty()) {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(token) = conn.extra_str("aws_session_token") {
            builder = builder.with_token(token);
        }
        if let Some(region) = conn.extra_str("region_name") {
            builder = builder.with_region(region);
        }
        if let Some(endpoint) = conn.extra_str("endpoint_url") {
            // Stores on a private network are often reached without TLS; an https endpoint keeps requiring it.
            builder = builder.with_allow_http(endpoint.starts_with("http://")).with_endpoint(endpoint);
        }
    }
    builder.build().map_err(|e| e.to_string())
}
