//! Renders `envoy/envoy.yaml.tmpl` (the one Envoy config source) for local runs, compose and
//! Kubernetes: `{{NAME}}` placeholders, pure string work, no I/O. A placeholder left without a
//! value is an error, never an empty string in the output.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;

/// The template, embedded so every renderer uses exactly the checked-in source.
pub const TEMPLATE: &str = include_str!("../../envoy/envoy.yaml.tmpl");
/// The rate-limit filter, its route policy and notes (`envoy/RATELIMIT.md` explains the slots).
pub const RATELIMIT_FRAGMENT: &str = include_str!("../../envoy/ratelimit.fragment.yaml");
/// The internal translator-svc -> ptc-svc router (listener and ring-hash cluster, ptc spec 9).
pub const PTC_ROUTER_FRAGMENT: &str = include_str!("../../envoy/ptc-router.fragment.yaml");
/// Envoy's OpenTelemetry tracer and its collector cluster (rendered only with a collector).
pub const TRACING_FRAGMENT: &str = include_str!("../../envoy/tracing.fragment.yaml");

/// The block under the top-level key `key` of a fragment file, up to the next top-level key:
/// the key line itself too when `keep_key`. Trailing comments (the next section's heading) and
/// blank lines are dropped.
pub fn fragment_section(text: &str, key: &str, keep_key: bool) -> Result<String, String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|line| *line == key)
        .ok_or_else(|| format!("the fragment has no top-level `{key}`"))?;
    let top_level = |line: &&str| !line.is_empty() && !line.starts_with([' ', '#', '-']);
    let end = lines[start + 1..]
        .iter()
        .position(top_level)
        .map_or(lines.len(), |offset| start + 1 + offset);
    let mut body: Vec<&str> = lines[if keep_key { start } else { start + 1 }..end].to_vec();
    while body
        .last()
        .is_some_and(|line| line.trim().is_empty() || line.starts_with('#'))
    {
        body.pop();
    }
    if body
        .iter()
        .all(|line| line.trim().is_empty() || line.trim_start().starts_with('#'))
    {
        return Err(format!("the fragment's `{key}` section is empty"));
    }
    Ok(body.join("\n") + "\n")
}

/// Replaces every `{{NAME}}` in `template` with `vars[NAME]`.
///
/// A placeholder alone on its line (after indentation) is a block slot: each line of the value is
/// indented to the placeholder's column, and an empty value removes the line. Anywhere else the
/// value is inserted as is. Fails, naming them, when placeholders have no value, and on a `{{`
/// that does not open a well-formed placeholder (`[A-Z0-9_]+`).
pub fn render(template: &str, vars: &BTreeMap<&str, String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 256);
    let mut missing = BTreeSet::new();
    for (index, line) in template.split_inclusive('\n').enumerate() {
        let line_no = index + 1;
        let body = line.trim_end_matches(['\n', '\r']);
        let indent = &body[..body.len() - body.trim_start().len()];
        if let Some(name) = lone_placeholder(body.trim()) {
            match vars.get(name) {
                Some(value) => push_block(&mut out, indent, value),
                None => {
                    missing.insert(name.to_owned());
                }
            }
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let name = after
                .find("}}")
                .map(|end| &after[..end])
                .filter(|name| is_name(name))
                .ok_or_else(|| {
                    format!(
                        "line {line_no}: malformed placeholder near `{}`",
                        snippet(&rest[start..])
                    )
                })?;
            match vars.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    missing.insert(name.to_owned());
                }
            }
            rest = &after[name.len() + 2..];
        }
        out.push_str(rest);
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        let names: Vec<String> = missing.into_iter().collect();
        Err(format!("no value for placeholder(s): {}", names.join(", ")))
    }
}

/// Every placeholder name the template uses.
pub fn placeholders(template: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) if is_name(&after[..end]) => {
                names.insert(after[..end].to_owned());
                rest = &after[end + 2..];
            }
            _ => rest = after,
        }
    }
    names
}

fn lone_placeholder(trimmed: &str) -> Option<&str> {
    trimmed
        .strip_prefix("{{")
        .and_then(|s| s.strip_suffix("}}"))
        .filter(|name| is_name(name))
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

fn push_block(out: &mut String, indent: &str, value: &str) {
    for line in value.lines() {
        if !line.trim().is_empty() {
            out.push_str(indent);
            out.push_str(line);
        }
        out.push('\n');
    }
}

fn snippet(s: &str) -> String {
    s.chars().take(24).collect::<String>().replace('\n', "\\n")
}

/// The values the gateway template needs, one field per placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyVars {
    /// `127.0.0.1` locally, `0.0.0.0` in containers.
    pub listen_address: String,
    pub listen_port: u16,
    /// Admin (stats) port; always bound to 127.0.0.1.
    pub admin_port: u16,
    /// The Prometheus scrape listener (only `GET /stats/prometheus`, proxied to admin):
    /// `127.0.0.1` locally, `0.0.0.0` in containers.
    pub stats_address: String,
    pub stats_port: u16,
    /// Path of `gate_filter.wasm` as Envoy sees it.
    pub wasm_path: String,
    pub translator_host: String,
    pub translator_port: u16,
    pub ratelimit_host: String,
    pub ratelimit_port: u16,
    /// Shared secret Envoy adds as `x-gw-internal-secret` (letters, digits, `-._~`).
    pub internal_secret: String,
    /// YAML list item(s) for the global rate-limit http filter slot; empty = no rate limiting.
    pub ratelimit_filter: String,
    /// YAML for the route's rate-limit slot (e.g. `typed_per_filter_config:`); empty = none.
    pub ratelimit_route: String,
    /// `lb_endpoints` items for translator-svc instances beyond the first; empty = one endpoint.
    pub more_translator_endpoints: String,
    /// The PTC router's listener and cluster list items; empty = no PTC router.
    pub ptc_router_listener: String,
    pub ptc_router_cluster: String,
    /// The connection manager's `tracing:` block and the collector cluster; empty = no tracing.
    pub tracing: String,
    pub tracing_cluster: String,
}

impl EnvoyVars {
    /// Everything on loopback with the default ports (spec: 8080, 9901, 50051, 50052).
    pub fn local(wasm_path: &Path, internal_secret: &str) -> Self {
        Self {
            listen_address: "127.0.0.1".to_owned(),
            listen_port: 8080,
            admin_port: 9901,
            stats_address: "127.0.0.1".to_owned(),
            stats_port: 9902,
            wasm_path: wasm_path.display().to_string(),
            translator_host: "127.0.0.1".to_owned(),
            translator_port: 50051,
            ratelimit_host: "127.0.0.1".to_owned(),
            ratelimit_port: 50052,
            internal_secret: internal_secret.to_owned(),
            ratelimit_filter: String::new(),
            ratelimit_route: String::new(),
            more_translator_endpoints: String::new(),
            ptc_router_listener: String::new(),
            ptc_router_cluster: String::new(),
            tracing: String::new(),
            tracing_cluster: String::new(),
        }
    }

    /// Containers (compose, Kubernetes): listen on all interfaces, reach services by DNS name.
    pub fn container(translator_host: &str, ratelimit_host: &str, internal_secret: &str) -> Self {
        Self {
            listen_address: "0.0.0.0".to_owned(),
            stats_address: "0.0.0.0".to_owned(),
            wasm_path: "/etc/envoy/gate_filter.wasm".to_owned(),
            translator_host: translator_host.to_owned(),
            ratelimit_host: ratelimit_host.to_owned(),
            ..Self::local(Path::new(""), internal_secret)
        }
    }

    /// The placeholder map, after checking values that could break the YAML.
    pub fn to_map(&self) -> Result<BTreeMap<&'static str, String>, String> {
        let secret_ok = !self.internal_secret.is_empty()
            && self
                .internal_secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if !secret_ok {
            return Err("internal secret must be non-empty letters, digits or -._~".to_owned());
        }
        for (what, host) in [
            ("listen address", &self.listen_address),
            ("stats address", &self.stats_address),
            ("translator host", &self.translator_host),
            ("ratelimit host", &self.ratelimit_host),
        ] {
            check_host(what, host)?;
        }
        if self.wasm_path.is_empty() || self.wasm_path.contains(['"', '\\', '\n']) {
            return Err(format!(
                "wasm path `{}` cannot be placed in the config",
                self.wasm_path
            ));
        }
        Ok(BTreeMap::from([
            ("LISTEN_ADDRESS", self.listen_address.clone()),
            ("LISTEN_PORT", self.listen_port.to_string()),
            ("ADMIN_PORT", self.admin_port.to_string()),
            ("STATS_ADDRESS", self.stats_address.clone()),
            ("STATS_PORT", self.stats_port.to_string()),
            ("WASM_PATH", self.wasm_path.clone()),
            ("TRANSLATOR_HOST", self.translator_host.clone()),
            ("TRANSLATOR_PORT", self.translator_port.to_string()),
            ("RATELIMIT_HOST", self.ratelimit_host.clone()),
            ("RATELIMIT_PORT", self.ratelimit_port.to_string()),
            ("INTERNAL_SECRET", self.internal_secret.clone()),
            ("RATELIMIT_FILTER", self.ratelimit_filter.clone()),
            ("RATELIMIT_ROUTE", self.ratelimit_route.clone()),
            (
                "MORE_TRANSLATOR_ENDPOINTS",
                self.more_translator_endpoints.clone(),
            ),
            ("PTC_ROUTER_LISTENER", self.ptc_router_listener.clone()),
            ("PTC_ROUTER_CLUSTER", self.ptc_router_cluster.clone()),
            ("TRACING", self.tracing.clone()),
            ("TRACING_CLUSTER", self.tracing_cluster.clone()),
        ]))
    }
}

/// The gateway's Envoy config for `vars`.
impl EnvoyVars {
    /// Fill the two rate-limit slots from `envoy/ratelimit.fragment.yaml`.
    pub fn with_rate_limiting(mut self) -> Result<Self, String> {
        self.ratelimit_filter = fragment_section(RATELIMIT_FRAGMENT, "http_filters:", false)?;
        self.ratelimit_route =
            fragment_section(RATELIMIT_FRAGMENT, "typed_per_filter_config:", true)?;
        Ok(self)
    }

    /// Round-robin over more translator-svc instances (`host`, `port`) besides the first.
    pub fn with_more_translators(mut self, more: &[(&str, u16)]) -> Result<Self, String> {
        self.more_translator_endpoints = lb_endpoints(more)?;
        Ok(self)
    }

    /// Fill the PTC router slots from `envoy/ptc-router.fragment.yaml`: a listener on
    /// `address:port` (what translator-svc's `PTC_ENDPOINT` names) hashing `x-gw-container-id`
    /// over the ptc-svc `replicas` (`host`, `port`; a DNS name may stand for several), names
    /// resolved by the system resolver.
    pub fn with_ptc_router(
        self,
        address: &str,
        port: u16,
        replicas: &[(&str, u16)],
    ) -> Result<Self, String> {
        self.with_ptc_router_resolved_by(address, port, replicas, None)
    }

    /// [`Self::with_ptc_router`], with the replicas' names resolved by `resolver` when given
    /// (the fragment's `dns_resolver:` section).
    pub fn with_ptc_router_resolved_by(
        mut self,
        address: &str,
        port: u16,
        replicas: &[(&str, u16)],
        resolver: Option<PtcDnsResolver>,
    ) -> Result<Self, String> {
        if replicas.is_empty() {
            return Err("the PTC router needs at least one ptc-svc replica".to_owned());
        }
        check_host("PTC router address", address)?;
        let dns_resolver = match resolver {
            None => String::new(),
            Some(resolver) => resolver.render()?,
        };
        let vars = BTreeMap::from([
            ("PTC_ROUTER_ADDRESS", address.to_owned()),
            ("PTC_ROUTER_PORT", port.to_string()),
            ("PTC_ENDPOINTS", lb_endpoints(replicas)?),
            ("PTC_DNS_RESOLVER", dns_resolver),
        ]);
        let section = |key| {
            fragment_section(PTC_ROUTER_FRAGMENT, key, false).and_then(|text| render(&text, &vars))
        };
        self.ptc_router_listener = section("listeners:")?;
        self.ptc_router_cluster = section("clusters:")?;
        Ok(self)
    }
}

/// A DNS server the PTC router's cluster asks for the replicas' addresses instead of the system
/// resolver: how the end-to-end tests stand in for a headless Service whose answer changes while
/// Envoy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtcDnsResolver {
    pub server: SocketAddr,
}

impl PtcDnsResolver {
    /// The cluster fields of the fragment's `dns_resolver:` section, without its indent.
    fn render(self) -> Result<String, String> {
        let vars = BTreeMap::from([
            ("PTC_DNS_SERVER_ADDRESS", self.server.ip().to_string()),
            ("PTC_DNS_SERVER_PORT", self.server.port().to_string()),
        ]);
        let section = fragment_section(PTC_ROUTER_FRAGMENT, "dns_resolver:", false)?;
        let fields: Vec<&str> = section
            .lines()
            .map(|line| line.strip_prefix("  ").unwrap_or(line))
            .collect();
        render(&(fields.join("\n") + "\n"), &vars)
    }
}

impl EnvoyVars {
    /// Fill the tracing slots from `envoy/tracing.fragment.yaml`: spans go to the OTLP/HTTP
    /// collector at `endpoint` (`http://host:port`, as in `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn with_tracing(mut self, endpoint: &str, service_name: &str) -> Result<Self, String> {
        let authority = endpoint
            .trim()
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|rest| !rest.contains('/'))
            .ok_or_else(|| format!("collector `{endpoint}` is not http://host:port"))?;
        let (host, port) = authority
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("collector `{endpoint}` has no port"))?;
        check_host("collector host", host)?;
        check_host("tracing service name", service_name)?;
        let vars = BTreeMap::from([
            ("OTEL_COLLECTOR_HOST", host.to_owned()),
            ("OTEL_COLLECTOR_PORT", port.to_string()),
            ("OTEL_SERVICE_NAME", service_name.to_owned()),
        ]);
        let section = |key, keep_key| {
            fragment_section(TRACING_FRAGMENT, key, keep_key).and_then(|text| render(&text, &vars))
        };
        self.tracing = section("tracing:", true)?;
        self.tracing_cluster = section("clusters:", false)?;
        Ok(self)
    }
}

/// `lb_endpoints` list items, one per (`host`, `port`).
fn lb_endpoints(endpoints: &[(&str, u16)]) -> Result<String, String> {
    let mut out = String::new();
    for (host, port) in endpoints {
        check_host("endpoint host", host)?;
        out.push_str(&format!(
            "- endpoint:\n    address:\n      socket_address: {{ address: {host}, port_value: {port} }}\n"
        ));
    }
    Ok(out)
}

fn check_host(what: &str, host: &str) -> Result<(), String> {
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b))
    {
        return Err(format!("{what} `{host}` is not a host name or IP address"));
    }
    Ok(())
}

pub fn render_envoy(vars: &EnvoyVars) -> Result<String, String> {
    render(TEMPLATE, &vars.to_map()?)
}

#[cfg(test)]
mod tests;
