//! Generated types for the gateway's own gRPC contracts (one module per proto package). No
//! hand-written logic lives here, except `telemetry` (feature `telemetry`, services only): the
//! log line and trace-context contract every service follows; its module doc says why it is here.
//!
//! Feature `grpc` (default) adds the tonic client and server code. The wasm filter depends on
//! this crate with `default-features = false`: it gets the very same prost message types (so the
//! wire format cannot drift between filter and service) without linking tonic, which does not
//! build for `wasm32-wasip1`. Both variants come from one protoc run over the same files.

/// Includes the generated code of one proto package, with or without the tonic services.
macro_rules! include_package {
    ($package:literal) => {
        #[cfg(feature = "grpc")]
        include!(concat!(env!("OUT_DIR"), "/", $package, ".rs"));
        #[cfg(not(feature = "grpc"))]
        include!(concat!(env!("OUT_DIR"), "/messages/", $package, ".rs"));
    };
}

/// `gateway.auth.v1`: the gate filter's key check (`Auth/Check`).
pub mod auth {
    pub mod v1 {
        include_package!("gateway.auth.v1");
    }
}

/// `gateway.ptc.v1`: ptc-svc's sandbox sessions and executions (Programmatic Tool Calling).
pub mod ptc {
    pub mod v1 {
        include_package!("gateway.ptc.v1");
    }
}

#[cfg(feature = "telemetry")]
pub mod telemetry;

/// Encoded `FileDescriptorSet` of every proto in this crate (for gRPC reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/gateway_descriptor.bin"));

#[cfg(test)]
mod tests {
    use super::auth::v1::{CheckRequest, CheckResponse};
    use prost::Message;

    #[test]
    fn messages_round_trip() {
        let response = CheckResponse {
            allowed: true,
            key_id: "k1".into(),
            tier: "priority".into(),
            requests_per_minute: 60,
            tokens_per_minute: 100_000,
            cache_ttl_ms: 5_000,
            ..Default::default()
        };
        let decoded = CheckResponse::decode(response.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, response);
        let request = CheckRequest {
            api_key: "sk".into(),
            path: "/v1/messages".into(),
            ..Default::default()
        };
        assert_eq!(
            CheckRequest::decode(request.encode_to_vec().as_slice()).unwrap(),
            request
        );
    }

    #[test]
    fn descriptor_set_names_the_auth_service() {
        let needle = b"gateway.auth.v1";
        assert!(
            super::FILE_DESCRIPTOR_SET
                .windows(needle.len())
                .any(|w| w == needle)
        );
    }

    #[cfg(feature = "grpc")]
    #[test]
    fn grpc_service_code_is_present() {
        let _ = super::auth::v1::auth_server::AuthServer::<Dummy>::new;
        let _ = super::auth::v1::auth_client::AuthClient::<tonic::transport::Channel>::new;
    }

    #[cfg(feature = "grpc")]
    struct Dummy;

    #[cfg(feature = "grpc")]
    #[tonic::async_trait]
    impl super::auth::v1::auth_server::Auth for Dummy {
        async fn check(
            &self,
            _request: tonic::Request<CheckRequest>,
        ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("test"))
        }
    }
}
