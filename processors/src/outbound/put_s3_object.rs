//! PutS3Object: stores each FlowFile's content as an S3 object.
//!
//! Bucket and key are templates; the content type is a template; user
//! metadata comes from listed attributes and/or every attribute with a
//! prefix. Content above `multipart_threshold` is uploaded in parts (an upload
//! that fails is aborted, so no parts are left behind). `endpoint_url` and
//! `path_style` point it at S3-compatible stores (MinIO, Ceph, moto...).
//! Credentials come from `access_key_id`/`secret_access_key` (secrets) or,
//! when those are not set (or empty), the usual AWS chain (environment, profile files,
//! web identity, ECS/EC2 metadata) through aws-config.
//!
//! The SDK's own retries are off: a failure classifies once here. 5xx,
//! `SlowDown`, `RequestTimeout`, timeouts and refused connections are
//! transient (the FlowFile stays queued, the processor backs off); 4xx such
//! as `NoSuchBucket` or `AccessDenied` go to `failure`.
//!
//! ```yaml
//! archive:
//!   type: PutS3Object
//!   properties:
//!     bucket: logs-archive
//!     key: "{{syslog.hostname}}/{{now \"%Y/%m/%d\"}}/{{filename}}"
//!     region: eu-west-1
//!     metadata_prefix: "s3.meta."
//!   auto_terminate: [success, failure]
//! ```
//!
//! Attributes written on success: `s3.bucket`, `s3.key`, `s3.etag`,
//! `s3.version` (versioned buckets), `s3.parts` (multipart uploads).

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use sluice_runtime::{
    BuildContext, BuildError, Escape, FlowFile, InputRequirement, ProcessContext, ProcessError,
    ProcessSession, Processor, ProcessorType, PropKind, Properties, PropertyDescriptor,
    PropertyError, RelationshipDef, Template, async_trait,
};

use super::retry::{
    self, BACKOFF_INITIAL, BACKOFF_MAX, Class, Delivered, Delivery, FAILURE, Failure, MAX_ATTEMPTS,
    SUCCESS, Sink,
};
use super::{Secret, secret_opt};

/// S3's smallest part (all but the last).
const MIN_PART: u64 = 5 * 1024 * 1024;
/// S3's most parts per upload.
const MAX_PARTS: u64 = 10_000;
/// Error codes S3 answers for conditions that pass.
const TRANSIENT_CODES: &[&str] = &[
    "RequestTimeout",
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "Throttling",
    "ThrottlingException",
    "RequestTimeTooSkewed",
];

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::required("bucket", PropKind::Template, "Bucket name (template)."),
    PropertyDescriptor::required(
        "key",
        PropKind::Template,
        "Object key (template), e.g. {{syslog.hostname}}/{{filename}}.",
    ),
    PropertyDescriptor::optional(
        "region",
        PropKind::Text,
        None,
        "AWS region; when absent, from the AWS environment/profile, else us-east-1.",
    ),
    PropertyDescriptor::optional(
        "endpoint_url",
        PropKind::Text,
        None,
        "Endpoint of an S3-compatible store, e.g. http://127.0.0.1:9000.",
    ),
    PropertyDescriptor::optional(
        "path_style",
        PropKind::Bool,
        Some("false"),
        "Address buckets as ENDPOINT/BUCKET/KEY instead of BUCKET.ENDPOINT/KEY (most S3-compatible stores).",
    ),
    PropertyDescriptor::optional(
        "access_key_id",
        PropKind::Text,
        None,
        "Access key id (secret); with secret_access_key. When both are absent, the AWS credential chain is used.",
    )
    .secret(),
    PropertyDescriptor::optional(
        "secret_access_key",
        PropKind::Text,
        None,
        "Secret access key, e.g. ${env:S3_SECRET} (secret).",
    )
    .secret(),
    PropertyDescriptor::optional(
        "session_token",
        PropKind::Text,
        None,
        "Session token for temporary credentials (secret).",
    )
    .secret(),
    PropertyDescriptor::optional(
        "content_type",
        PropKind::Template,
        Some("{{default mime.type \"application/octet-stream\"}}"),
        "Content-Type of the object (template).",
    ),
    PropertyDescriptor::optional(
        "metadata_attributes",
        PropKind::ListOf(&PropKind::NonEmpty),
        None,
        "Attributes stored as user metadata under their own names.",
    ),
    PropertyDescriptor::optional(
        "metadata_prefix",
        PropKind::Text,
        None,
        "Attributes starting with this prefix are stored as user metadata, prefix removed (e.g. `s3.meta.`).",
    ),
    PropertyDescriptor::optional(
        "storage_class",
        PropKind::Text,
        None,
        "Storage class, e.g. STANDARD_IA, GLACIER_IR (default: the bucket's).",
    ),
    PropertyDescriptor::optional(
        "multipart_threshold",
        PropKind::DataSize,
        Some("64 MB"),
        "Content larger than this is uploaded in parts.",
    ),
    PropertyDescriptor::optional(
        "multipart_part_size",
        PropKind::DataSize,
        Some("8 MiB"),
        "Size of each part (at least 5 MiB; grown when 10,000 parts would not do).",
    ),
    PropertyDescriptor::optional(
        "connect_timeout",
        PropKind::Duration,
        Some("5s"),
        "Longest wait to connect (a timeout is a transient failure).",
    ),
    PropertyDescriptor::optional(
        "timeout",
        PropKind::Duration,
        Some("5m"),
        "Longest time for one request (one part of a multipart upload).",
    ),
    BACKOFF_INITIAL,
    BACKOFF_MAX,
    MAX_ATTEMPTS,
];

/// The registry entry.
pub struct PutS3ObjectType;

impl ProcessorType for PutS3ObjectType {
    fn is_external(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "PutS3Object"
    }
    fn description(&self) -> &'static str {
        "Stores each FlowFile as an S3 object (bucket and key from templates, metadata from attributes), in parts above a threshold; works with S3-compatible stores through endpoint_url and path_style; credentials from properties or the AWS chain."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![
            RelationshipDef::new(SUCCESS, "S3 answered 200: the object is stored."),
            RelationshipDef::new(
                FAILURE,
                "S3 refused it for good (no such bucket, access denied, bad key...); reason in `put.error`.",
            ),
        ]
    }
    fn validate(&self, props: &Properties) -> Vec<PropertyError> {
        let mut errs = Vec::new();
        let err = |name: &str, message: String| PropertyError {
            name: name.into(),
            message,
            pos: props.raw(name).map(sluice_runtime::PropValue::pos),
        };
        let given = |name: &str| {
            props
                .str_opt(name)
                .ok()
                .flatten()
                .is_some_and(|v| !v.is_empty())
        };
        if given("access_key_id") != given("secret_access_key") {
            errs.push(err(
                "secret_access_key",
                "access_key_id and secret_access_key go together (or leave both out for the AWS credential chain)".into(),
            ));
        }
        if let Ok(size) = props.data_size("multipart_part_size")
            && size < MIN_PART
        {
            errs.push(err(
                "multipart_part_size",
                format!("{size} bytes is below S3's smallest part (5 MiB)"),
            ));
        }
        if let Ok(Some(u)) = props.str_opt("endpoint_url")
            && !u.is_empty()
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            errs.push(err("endpoint_url", format!("`{u}` is not an http(s) URL")));
        }
        errs
    }
    fn build(
        &self,
        props: &Properties,
        _: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        let compile = |name: &str| {
            Template::compile(props.str(name)?, Escape::None)
                .map_err(|e| BuildError::Other(format!("{name}: {e}")))
        };
        let credentials = match (
            secret_opt(props, "access_key_id")?,
            secret_opt(props, "secret_access_key")?,
        ) {
            (Some(id), Some(secret)) => Some(StaticCredentials {
                id,
                secret,
                token: secret_opt(props, "session_token")?,
            }),
            _ => None,
        };
        Ok(Box::new(PutS3Object {
            config: Config {
                bucket: compile("bucket")?,
                key: compile("key")?,
                content_type: compile("content_type")?,
                region: non_empty(props, "region")?,
                endpoint_url: non_empty(props, "endpoint_url")?,
                path_style: props.bool("path_style")?,
                credentials,
                metadata_attributes: props.list("metadata_attributes")?,
                metadata_prefix: props
                    .str_opt("metadata_prefix")?
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
                storage_class: non_empty(props, "storage_class")?,
                multipart_threshold: props.data_size("multipart_threshold")?,
                part_size: props.data_size("multipart_part_size")?,
                connect_timeout: props.duration("connect_timeout")?,
                timeout: props.duration("timeout")?,
            },
            client: OnceLock::new(),
            delivery: Delivery::from_props(props, FAILURE)?,
        }))
    }
    fn example(&self) -> &'static str {
        "bucket: logs-archive\nkey: \"{{syslog.hostname}}/{{filename}}\"\nregion: eu-west-1\nmetadata_prefix: \"s3.meta.\""
    }
}

/// An optional text property, `None` when absent or empty (so a flow can
/// write `${env:S3_ENDPOINT:-}` and get the default when it is not set).
fn non_empty(props: &Properties, name: &str) -> Result<Option<String>, PropertyError> {
    Ok(props
        .str_opt(name)?
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string))
}

#[derive(Debug)]
struct StaticCredentials {
    id: Secret,
    secret: Secret,
    token: Option<Secret>,
}

#[derive(Debug)]
struct Config {
    bucket: Template,
    key: Template,
    content_type: Template,
    region: Option<String>,
    endpoint_url: Option<String>,
    path_style: bool,
    credentials: Option<StaticCredentials>,
    metadata_attributes: Vec<String>,
    metadata_prefix: Option<String>,
    storage_class: Option<String>,
    multipart_threshold: u64,
    part_size: u64,
    connect_timeout: Duration,
    timeout: Duration,
}

struct PutS3Object {
    config: Config,
    client: OnceLock<aws_sdk_s3::Client>,
    delivery: Delivery,
}

impl fmt::Debug for PutS3Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutS3Object")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The S3 client: static credentials, or the AWS chain (async: profile
    /// files, metadata endpoints), so this runs in `on_scheduled`.
    async fn client(&self) -> aws_sdk_s3::Client {
        let mut b = if let Some(c) = &self.credentials {
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(
                    self.region.clone().unwrap_or_else(|| "us-east-1".into()),
                ))
                .credentials_provider(Credentials::new(
                    c.id.expose(),
                    c.secret.expose(),
                    c.token.as_ref().map(|t| t.expose().to_string()),
                    None,
                    "sluice-properties",
                ))
        } else {
            let region = aws_config::meta::region::RegionProviderChain::first_try(
                self.region.clone().map(Region::new),
            )
            .or_default_provider()
            .or_else(Region::from_static("us-east-1"));
            let shared = aws_config::defaults(BehaviorVersion::latest())
                .region(region)
                .load()
                .await;
            aws_sdk_s3::config::Builder::from(&shared)
        };
        b = b
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.connect_timeout)
                    .operation_attempt_timeout(self.timeout)
                    .build(),
            )
            .force_path_style(self.path_style)
            // Plain PUTs with Content-Length: what S3-compatible stores all accept.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        if let Some(u) = &self.endpoint_url {
            b = b.endpoint_url(u);
        }
        aws_sdk_s3::Client::from_conf(b.build())
    }

    fn metadata(&self, ff: &FlowFile) -> Option<HashMap<String, String>> {
        let mut m = HashMap::new();
        for name in &self.metadata_attributes {
            if let Some(v) = ff.attr(name) {
                m.insert(name.clone(), v.to_string());
            }
        }
        if let Some(prefix) = &self.metadata_prefix {
            for (k, v) in ff.attributes.iter() {
                if let Some(name) = k.strip_prefix(prefix.as_str())
                    && !name.is_empty()
                {
                    m.insert(name.to_string(), v.to_string());
                }
            }
        }
        (!m.is_empty()).then_some(m)
    }

    /// Part size for `len` bytes: the configured one, grown to stay within
    /// 10,000 parts.
    fn part_size_for(&self, len: u64) -> u64 {
        self.part_size.max(len.div_ceil(MAX_PARTS)).max(MIN_PART)
    }
}

/// Classifies an SDK error; `what` names the operation.
fn sdk_failure<E>(e: &SdkError<E>, what: &str) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let Some(t) = retry::tls_problem(e) {
        return Failure::permanent(format!("{what}: TLS: {t}"));
    }
    let detail = DisplayErrorContext(e).to_string();
    match e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("");
            let message = se.err().message().unwrap_or("");
            let class = if TRANSIENT_CODES.contains(&code) {
                Class::Transient
            } else {
                retry::http_status(status).unwrap_or(Class::Transient)
            };
            let retry_after = se
                .raw()
                .headers()
                .get("retry-after")
                .and_then(|v| retry::parse_retry_after(v, std::time::SystemTime::now()));
            Failure::permanent(
                format!("{what}: HTTP {status} {code} {message}")
                    .trim_end()
                    .to_string(),
            )
            .classed(class)
            .retry_after(retry_after)
        }
        SdkError::ConstructionFailure(_) => Failure::permanent(format!("{what}: {detail}")),
        SdkError::DispatchFailure(d) if d.is_user() => {
            Failure::permanent(format!("{what}: {detail}"))
        }
        // Timeouts, refused connections, responses cut short.
        _ => Failure::transient(format!("{what}: {detail}")),
    }
}

/// What the upload returned.
struct Stored {
    etag: Option<String>,
    version: Option<String>,
    parts: Option<usize>,
}

impl PutS3Object {
    async fn put_single(
        &self,
        client: &aws_sdk_s3::Client,
        bucket: &str,
        key: &str,
        content: Bytes,
        content_type: &str,
        metadata: Option<HashMap<String, String>>,
    ) -> Result<Stored, Failure> {
        let out = client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .set_metadata(metadata)
            .set_storage_class(self.config.storage_class.as_deref().map(Into::into))
            .body(ByteStream::from(content))
            .send()
            .await
            .map_err(|e| sdk_failure(&e, "PutObject"))?;
        Ok(Stored {
            etag: out.e_tag().map(str::to_string),
            version: out.version_id().map(str::to_string),
            parts: None,
        })
    }

    async fn put_multipart(
        &self,
        client: &aws_sdk_s3::Client,
        bucket: &str,
        key: &str,
        content: Bytes,
        content_type: &str,
        metadata: Option<HashMap<String, String>>,
    ) -> Result<Stored, Failure> {
        let created = client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .set_metadata(metadata)
            .set_storage_class(self.config.storage_class.as_deref().map(Into::into))
            .send()
            .await
            .map_err(|e| sdk_failure(&e, "CreateMultipartUpload"))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| Failure::transient("CreateMultipartUpload: no upload id in the answer"))?
            .to_string();
        let len = content.len();
        let part = usize::try_from(self.config.part_size_for(len as u64)).unwrap_or(usize::MAX);
        let upload = async {
            let mut parts = Vec::new();
            for (i, start) in (0..len).step_by(part).enumerate() {
                let number = i32::try_from(i + 1).unwrap_or(i32::MAX);
                let chunk = content.slice(start..(start + part).min(len));
                let out = client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(ByteStream::from(chunk))
                    .send()
                    .await
                    .map_err(|e| sdk_failure(&e, &format!("UploadPart {number}")))?;
                parts.push(
                    CompletedPart::builder()
                        .set_e_tag(out.e_tag().map(str::to_string))
                        .part_number(number)
                        .build(),
                );
            }
            let count = parts.len();
            let out = client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| sdk_failure(&e, "CompleteMultipartUpload"))?;
            Ok::<_, Failure>(Stored {
                etag: out.e_tag().map(str::to_string),
                version: out.version_id().map(str::to_string),
                parts: Some(count),
            })
        }
        .await;
        if upload.is_err() {
            // Best effort: parts of an unfinished upload cost storage until aborted.
            let _ = client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        upload
    }
}

#[async_trait]
impl Sink for PutS3Object {
    async fn deliver(
        &self,
        _: &ProcessContext,
        ff: &FlowFile,
        content: Bytes,
    ) -> Result<Delivered, Failure> {
        let Some(client) = self.client.get() else {
            return Err(Failure::transient(
                "the S3 client is not ready (not scheduled)",
            ));
        };
        let render = |t: &Template, what: &str| {
            t.render(&ff.attributes)
                .map(|s| s.trim().to_string())
                .map_err(|e| Failure::permanent(format!("{what}: {e}")))
        };
        let bucket = render(&self.config.bucket, "bucket")?;
        let key = render(&self.config.key, "key")?
            .trim_start_matches('/')
            .to_string();
        if bucket.is_empty() || key.is_empty() {
            return Err(Failure::permanent(format!(
                "bucket `{bucket}` / key `{key}`: neither may be empty"
            )));
        }
        let content_type = render(&self.config.content_type, "content_type")?;
        let metadata = self.config.metadata(ff);
        let stored = if content.len() as u64 > self.config.multipart_threshold {
            self.put_multipart(client, &bucket, &key, content, &content_type, metadata)
                .await?
        } else {
            self.put_single(client, &bucket, &key, content, &content_type, metadata)
                .await?
        };
        let mut attributes = vec![
            ("s3.bucket".to_string(), bucket.clone()),
            ("s3.key".to_string(), key.clone()),
        ];
        for (name, v) in [
            ("s3.etag", stored.etag),
            ("s3.version", stored.version),
            ("s3.parts", stored.parts.map(|p| p.to_string())),
        ] {
            if let Some(v) = v {
                attributes.push((name.to_string(), v));
            }
        }
        Ok(Delivered {
            destination: format!("s3://{bucket}/{key}"),
            attributes,
        })
    }
}

#[async_trait]
impl Processor for PutS3Object {
    async fn on_scheduled(&self, _: &ProcessContext) -> Result<(), ProcessError> {
        if self.client.get().is_none() {
            let client = self.config.client().await;
            let _ = self.client.set(client);
        }
        Ok(())
    }

    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        self.delivery.run(self, ctx, session).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::testing::check_type_contract;

    #[test]
    fn contract() {
        check_type_contract(&PutS3ObjectType, &crate::registry()).unwrap();
    }

    fn config(yaml: &str) -> Config {
        let props = crate::test_props(&PutS3ObjectType, yaml);
        let compile = |s: &str| Template::compile(s, Escape::None).unwrap();
        Config {
            bucket: compile("b"),
            key: compile("k"),
            content_type: compile("t"),
            region: None,
            endpoint_url: None,
            path_style: false,
            credentials: None,
            metadata_attributes: props.list("metadata_attributes").unwrap(),
            metadata_prefix: props
                .str_opt("metadata_prefix")
                .unwrap()
                .map(str::to_string),
            storage_class: None,
            multipart_threshold: 0,
            part_size: props.data_size("multipart_part_size").unwrap(),
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn metadata_from_a_list_and_a_prefix() {
        let c = config(
            "bucket: b\nkey: k\nmetadata_attributes: [host, missing]\nmetadata_prefix: \"s3.meta.\"\n",
        );
        let mut ff = FlowFile::new();
        ff.attributes.insert("host", "db1");
        ff.attributes.insert("s3.meta.owner", "ops");
        ff.attributes.insert("s3.meta.", "ignored: no name");
        ff.attributes.insert("other", "no");
        let m = c.metadata(&ff).unwrap();
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m["host"], "db1");
        assert_eq!(m["owner"], "ops");
        assert_eq!(c.metadata(&FlowFile::new()), None);
    }

    #[test]
    fn part_size_stays_within_s3_limits() {
        let c = config("bucket: b\nkey: k\nmultipart_part_size: 8 MiB\n");
        assert_eq!(c.part_size_for(20 << 20), 8 << 20);
        // 10,000 parts of 8 MiB are not enough for 100 GB: parts grow.
        let big = 100_000_000_000u64;
        let p = c.part_size_for(big);
        assert!(big.div_ceil(p) <= MAX_PARTS, "{p}");
    }

    #[test]
    fn validation_catches_half_credentials_and_small_parts() {
        let e = sluice_runtime::testing::props_from_yaml(
            &PutS3ObjectType,
            &crate::registry(),
            "bucket: b\nkey: k\naccess_key_id: AKIA\nmultipart_part_size: 1 MB\nendpoint_url: localhost:9000\n",
        )
        .unwrap_err();
        assert!(e.contains("go together"), "{e}");
        assert!(e.contains("below S3's smallest part"), "{e}");
        assert!(e.contains("not an http(s) URL"), "{e}");
        assert!(!e.contains("AKIA"), "{e}");
    }

    #[test]
    fn empty_endpoint_region_and_credentials_mean_not_set() {
        let props = sluice_runtime::testing::props_from_yaml(
            &PutS3ObjectType,
            &crate::registry(),
            "bucket: b\nkey: k\nendpoint_url: \"\"\nregion: \"\"\nstorage_class: \"\"\naccess_key_id: \"\"\nsecret_access_key: \"\"\n",
        )
        .unwrap();
        assert_eq!(non_empty(&props, "endpoint_url").unwrap(), None);
        assert_eq!(non_empty(&props, "region").unwrap(), None);
        assert_eq!(non_empty(&props, "storage_class").unwrap(), None);
        assert!(
            PutS3ObjectType
                .build(&props, &BuildContext::default())
                .is_ok()
        );
    }

    #[test]
    fn debug_hides_credentials() {
        let c = StaticCredentials {
            id: Secret::new("AKIAS3CRET"),
            secret: Secret::new("wJalrS3CRET"),
            token: Some(Secret::new("tokS3CRET")),
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("S3CRET"), "{shown}");
    }
}
