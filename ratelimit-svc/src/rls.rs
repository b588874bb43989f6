//! The gRPC face: Envoy's `envoy.service.ratelimit.v3.RateLimitService`. Only translates between
//! the protobuf types and the use case in `check`; no decision is taken here.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit, rate_limit::Unit as ProtoUnit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;
use tonic::{Request, Response, Status};

use crate::check::{CheckIn, Checker, Decision, DescriptorIn};
use crate::limits::Unit;

pub struct Rls {
    checker: Arc<Checker>,
}

impl Rls {
    pub fn server(checker: Arc<Checker>) -> RateLimitServiceServer<Self> {
        RateLimitServiceServer::new(Self { checker })
    }
}

#[tonic::async_trait]
impl RateLimitService for Rls {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        if request.domain.is_empty() {
            return Err(Status::invalid_argument(
                "rate limit domain must not be empty",
            ));
        }
        let check = CheckIn {
            domain: &request.domain,
            descriptors: request.descriptors.iter().map(to_descriptor_in).collect(),
            hits_addend: request.hits_addend,
            log_request_id: metadata
                .get("x-request-id")
                .and_then(|id| id.to_str().ok())
                // The same bounds as the call span's `request_id`.
                .filter(|id| !id.is_empty() && id.len() <= 128),
        };
        let decision = self.checker.check(&check).await;
        Ok(Response::new(to_response(decision)))
    }
}

fn to_descriptor_in(descriptor: &RateLimitDescriptor) -> DescriptorIn<'_> {
    DescriptorIn {
        entries: descriptor
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect(),
        limit_override: descriptor.limit.and_then(|limit| {
            from_proto_unit(limit.unit).map(|unit| (u64::from(limit.requests_per_unit), unit))
        }),
        hits_addend: descriptor.hits_addend.map(|h| h.value),
        negative: descriptor.is_negative_hits,
    }
}

fn to_response(decision: Decision) -> RateLimitResponse {
    let code = |over: bool| if over { Code::OverLimit } else { Code::Ok } as i32;
    let statuses = decision
        .statuses
        .iter()
        .map(|s| DescriptorStatus {
            code: code(s.over_limit),
            current_limit: s.limit.as_ref().map(|limit| RateLimit {
                name: limit.name.clone().unwrap_or_default(),
                requests_per_unit: u32::try_from(limit.requests_per_unit).unwrap_or(u32::MAX),
                unit: to_proto_unit(limit.unit) as i32,
            }),
            limit_remaining: u32::try_from(s.remaining).unwrap_or(u32::MAX),
            duration_until_reset: s.limit.as_ref().map(|_| ProtoDuration {
                seconds: i64::try_from(s.reset_after_ms / 1_000).unwrap_or(i64::MAX),
                nanos: i32::try_from((s.reset_after_ms % 1_000) * 1_000_000).unwrap_or(0),
            }),
            quota: None,
        })
        .collect();
    RateLimitResponse {
        overall_code: code(decision.over_limit),
        statuses,
        response_headers_to_add: decision
            .response_headers
            .into_iter()
            .map(|(key, value)| HeaderValue {
                key,
                value,
                raw_value: Vec::new(),
            })
            .collect(),
        request_headers_to_add: Vec::new(),
        raw_body: decision.body.into_bytes(),
        dynamic_metadata: None,
        quota: None,
    }
}

/// `envoy.type.v3.RateLimitUnit` (the override's enum) to ours.
fn from_proto_unit(unit: i32) -> Option<Unit> {
    match unit {
        1 => Some(Unit::Second),
        2 => Some(Unit::Minute),
        3 => Some(Unit::Hour),
        4 => Some(Unit::Day),
        5 => Some(Unit::Month),
        6 => Some(Unit::Year),
        7 => Some(Unit::Week),
        _ => None,
    }
}

fn to_proto_unit(unit: Unit) -> ProtoUnit {
    match unit {
        Unit::Second => ProtoUnit::Second,
        Unit::Minute => ProtoUnit::Minute,
        Unit::Hour => ProtoUnit::Hour,
        Unit::Day => ProtoUnit::Day,
        Unit::Week => ProtoUnit::Week,
        Unit::Month => ProtoUnit::Month,
        Unit::Year => ProtoUnit::Year,
    }
}
