//! Kubernetes "service links": for every Service in the namespace, Kubernetes injects
//! `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT[_<PORT>]`, `<NAME>_PORT` and
//! `<NAME>_PORT_<n>_<PROTO>[_PROTO|_PORT|_ADDR]` into every container. A Service named
//! `gezinsdossier` (or `gezinsdossier-metrics`) therefore lands inside our own
//! `GEZINSDOSSIER_*` namespace, where the configuration refuses unknown keys.
//!
//! Only exactly those shapes, with values of the shapes Kubernetes writes, are recognised:
//! a typo such as `GEZINSDOSSIER_LISTN` is still refused.

use std::net::IpAddr;

/// Whether `key` (with the `GEZINSDOSSIER_` prefix already taken off) and `value` are a
/// variable Kubernetes injected for a Service.
pub fn is_service_link(key: &str, value: &str) -> bool {
    let key = key.to_ascii_uppercase();
    // Our nested keys use `__`; a Service name becomes single underscores.
    if key.contains("__") {
        return false;
    }
    let words: Vec<&str> = key.split('_').collect();
    // The Service's own name is any run of words before the shape; try each start.
    (0..words.len()).any(|start| shape_matches(&words[start..], value))
}

fn shape_matches(words: &[&str], value: &str) -> bool {
    match words {
        ["SERVICE", "HOST"] => value.parse::<IpAddr>().is_ok() || is_hostname(value),
        ["SERVICE", "PORT", port_name @ ..] => port_name.iter().all(|w| !w.is_empty()) && is_port(value),
        ["PORT"] => is_endpoint_url(value),
        ["PORT", number, proto] => is_port(number) && is_protocol(proto) && is_endpoint_url(value),
        ["PORT", number, proto, "PROTO"] => is_port(number) && is_protocol(proto) && is_protocol(value),
        ["PORT", number, proto, "PORT"] => is_port(number) && is_protocol(proto) && is_port(value),
        ["PORT", number, proto, "ADDR"] => is_port(number) && is_protocol(proto) && value.parse::<IpAddr>().is_ok(),
        _ => false,
    }
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_protocol(s: &str) -> bool {
    matches!(s.to_ascii_uppercase().as_str(), "TCP" | "UDP" | "SCTP")
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `tcp://10.0.0.1:50051` (IPv6 hosts in brackets).
fn is_endpoint_url(value: &str) -> bool {
    let Some((proto, rest)) = value.split_once("://") else { return false };
    let Some((host, port)) = rest.rsplit_once(':') else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    is_protocol(proto) && is_port(port) && host.parse::<IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::is_service_link;

    #[test]
    fn the_variables_kubernetes_injects_for_a_service_are_recognised() {
        for (key, value) in [
            ("PORT", "tcp://10.0.0.1:50051"),
            ("SERVICE_HOST", "10.0.0.1"),
            ("SERVICE_PORT", "50051"),
            ("SERVICE_PORT_GRPC", "50051"),
            ("PORT_50051_TCP", "tcp://10.0.0.1:50051"),
            ("PORT_50051_TCP_PROTO", "tcp"),
            ("PORT_50051_TCP_PORT", "50051"),
            ("PORT_50051_TCP_ADDR", "10.0.0.1"),
            ("PORT", "tcp://[fd00::1]:50051"),
            // A Service named gezinsdossier-metrics.
            ("METRICS_SERVICE_HOST", "10.0.0.2"),
            ("METRICS_PORT_9100_TCP", "tcp://10.0.0.2:9100"),
            ("metrics_service_port_http_metrics", "9100"),
        ] {
            assert!(is_service_link(key, value), "{key}={value}");
        }
    }

    #[test]
    fn other_keys_and_values_are_not_mistaken_for_service_links() {
        for (key, value) in [
            ("LISTN", "0.0.0.0:50051"),
            ("LISTEN", "0.0.0.0:50051"),
            // Right key, value not of Kubernetes' shape: a mistake, not a service link.
            ("PORT", "50051"),
            ("SERVICE_PORT", "grpc"),
            ("SERVICE_HOST", "not a host"),
            ("PORT_50051_TCP", "10.0.0.1:50051"),
            ("PORT_50051_HTTP_PROTO", "tcp"),
            ("POSTGRES__SERVICE_HOST", "10.0.0.1"),
            ("TLS__PORT", "tcp://10.0.0.1:1"),
        ] {
            assert!(!is_service_link(key, value), "{key}={value}");
        }
    }
}
