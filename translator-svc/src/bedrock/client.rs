//! The real `Bedrock`: one `aws_sdk_bedrockruntime::Client` per process, with the gateway's
//! timeouts (connect 10 s, read >= the upstream idle limit), at most one SDK retry (spec 5.6), and
//! optional cross-account credentials through STS AssumeRole (refreshed by the SDK's cache).

use super::converse_input::{
    ConverseParts, service_tier, to_converse_parts, to_converse_tokens_request,
};
use super::converse_output::{converse_response_json, stream_event_json};
use super::error::{BedrockError, ExceptionKind};
use super::json::{Obj, union};
use super::sdk_error::from_sdk_error;
use super::{Bedrock, ConverseCall, EventStream, InvokeCall, InvokeOutput, InvokeStream};
use aws_config::BehaviorVersion;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::Credentials;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::{Builder as ConfigBuilder, Region};
use aws_sdk_bedrockruntime::types::{
    CountTokensInput, InvokeModelTokensRequest, ResponseStream, ServiceTierType,
};
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority,
};
use aws_smithy_types::Blob;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use bytes::Bytes;
use futures::future::BoxFuture;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Session name used for `BEDROCK_ROLE_ARN` (visible in the target account's CloudTrail).
const ROLE_SESSION_NAME: &str = "anthropic-bedrock-gateway";

/// How to reach Bedrock. Built by `config.rs` from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BedrockSettings {
    /// `AWS_REGION`: the gateway's region (also used for STS).
    pub region: String,
    /// Explicit Bedrock Runtime endpoint. `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` is also honoured by
    /// aws-config when this is unset.
    pub endpoint_url: Option<String>,
    /// `BEDROCK_ROLE_ARN`: assume this role (STS AssumeRole, refreshed before expiry).
    pub role_arn: Option<String>,
    /// `BEDROCK_REGION`: the region Bedrock is called in, when it differs from `region`.
    pub role_region: Option<String>,
    pub connect_timeout: Duration,
    /// Time allowed until response headers; at least `UPSTREAM_IDLE_TIMEOUT`.
    pub read_timeout: Duration,
    /// Total SDK attempts (2: the gateway retries at most once).
    pub max_attempts: u32,
}

impl BedrockSettings {
    /// Defaults from the spec for a region: connect 10 s, read 600 s, 2 attempts.
    pub fn new(region: impl Into<String>) -> Self {
        BedrockSettings {
            region: region.into(),
            endpoint_url: None,
            role_arn: None,
            role_region: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(600),
            max_attempts: 2,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.region.trim().is_empty(),
            "AWS_REGION must not be empty"
        );
        anyhow::ensure!(
            self.max_attempts >= 1,
            "Bedrock max attempts must be at least 1"
        );
        Ok(())
    }

    fn bedrock_region(&self) -> Region {
        Region::new(
            self.role_region
                .clone()
                .unwrap_or_else(|| self.region.clone()),
        )
    }
}

/// The production client: default credential chain (env, `AWS_PROFILE`, SSO, IMDS, ...),
/// optionally assuming `role_arn`.
pub async fn connect(settings: &BedrockSettings) -> anyhow::Result<Arc<dyn Bedrock>> {
    settings.validate()?;
    let base = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(settings.region.clone()))
        .load()
        .await;
    let mut builder = ConfigBuilder::from(&base);
    if let Some(role) = &settings.role_arn {
        let provider = AssumeRoleProvider::builder(role.clone())
            .session_name(ROLE_SESSION_NAME)
            .configure(&base)
            .build()
            .await;
        builder = builder.credentials_provider(provider);
    }
    Ok(Arc::new(SdkBedrock::new(configure(builder, settings))))
}

/// A client with fixed credentials and no environment lookups (tests, local fakes).
pub fn connect_with_credentials(
    settings: &BedrockSettings,
    credentials: Credentials,
) -> anyhow::Result<Arc<dyn Bedrock>> {
    settings.validate()?;
    let builder = ConfigBuilder::new()
        .behavior_version(BehaviorVersion::latest())
        .credentials_provider(credentials);
    Ok(Arc::new(SdkBedrock::new(configure(builder, settings))))
}

fn configure(builder: ConfigBuilder, settings: &BedrockSettings) -> aws_sdk_bedrockruntime::Config {
    let mut builder = builder
        .region(settings.bedrock_region())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(settings.connect_timeout)
                .read_timeout(settings.read_timeout)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts))
        .retry_classifier(OnlyTransientRetries);
    if let Some(url) = &settings.endpoint_url {
        builder = builder.endpoint_url(url.clone());
    }
    builder.build()
}

/// Spec 5.6 retries only throttling, `ServiceUnavailable`, `ModelNotReady` and transport
/// failures; the SDK's default also retries a 500 (`InternalServerException`), which this forbids.
#[derive(Debug)]
struct OnlyTransientRetries;

impl ClassifyRetry for OnlyTransientRetries {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.response().map(|r| r.status().as_u16()) {
            Some(500) => RetryAction::RetryForbidden,
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "gateway: no retry on InternalServerException"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

struct SdkBedrock {
    client: Client,
}

impl SdkBedrock {
    fn new(config: aws_sdk_bedrockruntime::Config) -> Self {
        SdkBedrock {
            client: Client::from_conf(config),
        }
    }

    async fn invoke_stream_call(&self, call: InvokeCall) -> Result<InvokeStream, BedrockError> {
        let out = self
            .client
            .invoke_model_with_response_stream()
            .model_id(call.model_id)
            .body(Blob::new(call.body.to_vec()))
            .content_type("application/json")
            .accept("application/json")
            .set_service_tier(call.service_tier.as_deref().map(ServiceTierType::from))
            .send()
            .await
            .map_err(from_sdk_error)?;
        let service_tier = out.service_tier.as_ref().map(|t| t.as_str().to_owned());
        let events = futures::stream::unfold(Some(out.body), |receiver| async move {
            let mut receiver = receiver?;
            loop {
                match receiver.recv().await {
                    Ok(Some(ResponseStream::Chunk(part))) => {
                        let bytes = part.bytes.map(Blob::into_inner).unwrap_or_default();
                        return Some(match serde_json::from_slice::<Value>(&bytes) {
                            Ok(event) => (Ok(event), Some(receiver)),
                            Err(e) => (Err(decode_error(&e)), None),
                        });
                    }
                    Ok(Some(other)) => {
                        tracing::warn!(event = ?other, "unknown InvokeModel stream event skipped");
                    }
                    Ok(None) => return None,
                    Err(e) => return Some((Err(from_sdk_error(e)), None)),
                }
            }
        });
        Ok(InvokeStream {
            events: Box::pin(events),
            service_tier,
        })
    }

    async fn converse_call(&self, call: ConverseCall) -> Result<Value, BedrockError> {
        let parts = parts_of(&call)?;
        let out = self
            .client
            .converse()
            .model_id(call.model_id)
            .set_messages(Some(parts.messages))
            .set_system(parts.system)
            .set_inference_config(parts.inference_config)
            .set_tool_config(parts.tool_config)
            .set_additional_model_request_fields(parts.additional_model_request_fields)
            .set_additional_model_response_field_paths(parts.additional_model_response_field_paths)
            .set_request_metadata(parts.request_metadata)
            .set_performance_config(parts.performance_config)
            .set_service_tier(parts.service_tier)
            .set_output_config(parts.output_config)
            .send()
            .await
            .map_err(from_sdk_error)?;
        Ok(converse_response_json(&out))
    }

    async fn converse_stream_call(
        &self,
        call: ConverseCall,
    ) -> Result<EventStream<Value>, BedrockError> {
        let parts = parts_of(&call)?;
        let out = self
            .client
            .converse_stream()
            .model_id(call.model_id)
            .set_messages(Some(parts.messages))
            .set_system(parts.system)
            .set_inference_config(parts.inference_config)
            .set_tool_config(parts.tool_config)
            .set_additional_model_request_fields(parts.additional_model_request_fields)
            .set_additional_model_response_field_paths(parts.additional_model_response_field_paths)
            .set_request_metadata(parts.request_metadata)
            .set_performance_config(parts.performance_config)
            .set_service_tier(parts.service_tier)
            .set_output_config(parts.output_config)
            .send()
            .await
            .map_err(from_sdk_error)?;
        let events = futures::stream::unfold(Some(out.stream), |receiver| async move {
            let mut receiver = receiver?;
            match receiver.recv().await {
                Ok(Some(event)) => Some((Ok(stream_event_json(&event)), Some(receiver))),
                Ok(None) => None,
                Err(e) => Some((Err(from_sdk_error(e)), None)),
            }
        });
        Ok(Box::pin(events))
    }

    async fn count_tokens_call(&self, model_id: String, input: Value) -> Result<u64, BedrockError> {
        let (member, inner) = union(&input, "input")?;
        let input = match member {
            "invokeModel" => {
                let o = Obj::new(inner, "input.invokeModel")?;
                o.only(&["body"])?;
                let request = InvokeModelTokensRequest::builder()
                    .body(o.blob("body")?)
                    .build()
                    .map_err(|e| {
                        BedrockError::invalid_request("input.invokeModel", e.to_string())
                    })?;
                CountTokensInput::InvokeModel(request)
            }
            "converse" => {
                CountTokensInput::Converse(to_converse_tokens_request(inner, "input.converse")?)
            }
            other => {
                return Err(BedrockError::invalid_request(
                    &format!("input.{other}"),
                    "unsupported count tokens input",
                ));
            }
        };
        let out = self
            .client
            .count_tokens()
            .model_id(model_id)
            .input(input)
            .send()
            .await
            .map_err(from_sdk_error)?;
        u64::try_from(out.input_tokens).map_err(|_| {
            BedrockError::new(
                ExceptionKind::Decode,
                "CountTokens returned a negative count",
            )
        })
    }
}

/// The request's SDK fields, with the call's tier (if any) replacing the JSON `serviceTier`.
fn parts_of(call: &ConverseCall) -> Result<ConverseParts, BedrockError> {
    let mut parts = to_converse_parts(&call.request)?;
    if let Some(tier) = &call.service_tier {
        parts.service_tier = Some(service_tier(tier, "serviceTier")?);
    }
    Ok(parts)
}

fn decode_error(e: &serde_json::Error) -> BedrockError {
    BedrockError::new(
        ExceptionKind::Decode,
        format!("InvokeModel stream chunk is not JSON: {e}"),
    )
}

impl Bedrock for SdkBedrock {
    fn invoke(&self, call: InvokeCall) -> BoxFuture<'_, Result<InvokeOutput, BedrockError>> {
        Box::pin(async move {
            let out = self
                .client
                .invoke_model()
                .model_id(call.model_id)
                .body(Blob::new(call.body.to_vec()))
                .content_type("application/json")
                .accept("application/json")
                .set_service_tier(call.service_tier.as_deref().map(ServiceTierType::from))
                .send()
                .await
                .map_err(from_sdk_error)?;
            Ok(InvokeOutput {
                service_tier: out.service_tier.as_ref().map(|t| t.as_str().to_owned()),
                body: Bytes::from(out.body.into_inner()),
            })
        })
    }

    fn invoke_stream(&self, call: InvokeCall) -> BoxFuture<'_, Result<InvokeStream, BedrockError>> {
        Box::pin(self.invoke_stream_call(call))
    }

    fn converse(&self, call: ConverseCall) -> BoxFuture<'_, Result<Value, BedrockError>> {
        Box::pin(self.converse_call(call))
    }

    fn converse_stream(
        &self,
        call: ConverseCall,
    ) -> BoxFuture<'_, Result<EventStream<Value>, BedrockError>> {
        Box::pin(self.converse_stream_call(call))
    }

    fn count_tokens(
        &self,
        model_id: String,
        input: Value,
    ) -> BoxFuture<'_, Result<u64, BedrockError>> {
        Box::pin(self.count_tokens_call(model_id, input))
    }
}
