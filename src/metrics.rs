//! Prometheus metrics, served on their own listener (`server.metrics_listen`).
//!
//! Every handle the request path touches is created once here, so recording
//! is a few atomic operations: no label lookup or allocation per request.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

pub struct Metrics {
    registry: Registry,
    by_class: [Counter; 5],
    pub in_flight: Gauge<i64, std::sync::atomic::AtomicI64>,
    pub upstream_seconds: Histogram,
    pub upstream_connect_errors: Counter,
    pub upstream_timeouts: Counter,
    pub upstream_other_errors: Counter,
    pub policy_denials: Counter,
    /// Requests refused because the session's role is below the role table's.
    pub role_denials: Counter,
    pub logins_ok: Counter,
    pub logins_failed: Counter,
    pub sessions: Gauge<i64, std::sync::atomic::AtomicI64>,
    ldap_server_up: Family<Vec<(&'static str, String)>, Gauge<i64, std::sync::atomic::AtomicI64>>,
    /// Access lines dropped because the log writer fell behind
    /// (`telemetry::access`); brought up to date at each render.
    access_log_dropped: Counter,
    access_log_dropped_seen: AtomicU64,
    saml_metadata_stale:
        Family<Vec<(&'static str, String)>, Gauge<i64, std::sync::atomic::AtomicI64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("authgate");
        let requests = Family::<Labels, Counter<u64, AtomicU64>>::default();
        registry.register(
            "requests",
            "Requests answered, by status class",
            requests.clone(),
        );
        let by_class = ["1xx", "2xx", "3xx", "4xx", "5xx"]
            .map(|c| requests.get_or_create(&vec![("class", c)]).clone());

        let in_flight = Gauge::default();
        registry.register(
            "in_flight_requests",
            "Requests being handled now",
            in_flight.clone(),
        );

        let upstream_seconds = Histogram::new([
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0,
        ]);
        registry.register(
            "upstream_response_seconds",
            "Time until the upstream's response head",
            upstream_seconds.clone(),
        );

        let upstream_errors = Family::<Labels, Counter<u64, AtomicU64>>::default();
        registry.register(
            "upstream_errors",
            "Failed upstream requests, by kind",
            upstream_errors.clone(),
        );
        let upstream_connect_errors = upstream_errors
            .get_or_create(&vec![("kind", "connect")])
            .clone();
        let upstream_timeouts = upstream_errors
            .get_or_create(&vec![("kind", "timeout")])
            .clone();
        let upstream_other_errors = upstream_errors
            .get_or_create(&vec![("kind", "other")])
            .clone();

        let policy_denials = Counter::default();
        registry.register(
            "policy_denials",
            "Requests refused by the route policy",
            policy_denials.clone(),
        );

        let role_denials = Counter::default();
        registry.register(
            "role_denials",
            "Requests refused because the person's organization role is below what the route needs (policy.enforce_roles)",
            role_denials.clone(),
        );

        let logins = Family::<Labels, Counter<u64, AtomicU64>>::default();
        registry.register("logins", "Login attempts, by result", logins.clone());
        let logins_ok = logins.get_or_create(&vec![("result", "success")]).clone();
        let logins_failed = logins.get_or_create(&vec![("result", "failure")]).clone();

        let sessions = Gauge::default();
        registry.register(
            "sessions",
            "Live sessions in this replica's store",
            sessions.clone(),
        );

        let ldap_server_up = Family::default();
        registry.register(
            "ldap_server_up",
            "Each server of ldap.server_uri: 1 when its last connect succeeded, 0 when it failed",
            ldap_server_up.clone(),
        );

        let access_log_dropped = Counter::default();
        registry.register(
            "access_log_dropped",
            "Access log lines dropped because the log writer fell behind (never a request waiting for the log)",
            access_log_dropped.clone(),
        );
        let saml_metadata_stale = Family::default();
        registry.register(
            "saml_metadata_stale",
            "Each SAML IdP: 1 when its last metadata refresh failed or was refused (an older copy is in force) or the copy in force is past its validUntil",
            saml_metadata_stale.clone(),
        );

        Metrics {
            access_log_dropped,
            access_log_dropped_seen: AtomicU64::new(0),
            ldap_server_up,
            saml_metadata_stale,
            registry,
            by_class,
            in_flight,
            upstream_seconds,
            upstream_connect_errors,
            upstream_timeouts,
            upstream_other_errors,
            policy_denials,
            role_denials,
            logins_ok,
            logins_failed,
            sessions,
        }
    }

    pub fn record_status(&self, status: u16) {
        let idx = (status / 100).clamp(1, 5) as usize - 1;
        self.by_class[idx].inc();
    }

    /// Sets the `ldap_server_up` gauge of one directory server.
    pub fn set_ldap_server_up(&self, uri: &str, up: bool) {
        self.ldap_server_up
            .get_or_create(&vec![("uri", uri.to_string())])
            .set(i64::from(up));
    }

    /// Sets the `saml_metadata_stale` gauge of one IdP (`saml.idps` id).
    pub fn set_saml_metadata_stale(&self, idp: &str, stale: bool) {
        self.saml_metadata_stale
            .get_or_create(&vec![("idp", idp.to_string())])
            .set(i64::from(stale));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let dropped = crate::telemetry::access::dropped();
        let seen = self
            .access_log_dropped_seen
            .swap(dropped, std::sync::atomic::Ordering::Relaxed);
        self.access_log_dropped.inc_by(dropped.saturating_sub(seen));
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_request_classes_and_upstream_histogram() {
        let m = Metrics::new();
        m.record_status(200);
        m.record_status(503);
        m.upstream_seconds.observe(0.002);
        let text = m.render();
        assert!(
            text.contains("authgate_requests_total{class=\"2xx\"} 1"),
            "{text}"
        );
        assert!(text.contains("authgate_requests_total{class=\"5xx\"} 1"));
        assert!(text.contains("authgate_upstream_response_seconds_bucket"));
        assert!(text.contains("authgate_upstream_errors_total{kind=\"timeout\"} 0"));
    }

    #[test]
    fn ldap_servers_are_one_gauge_each() {
        let m = Metrics::new();
        m.set_ldap_server_up("ldaps://a:636", true);
        m.set_ldap_server_up("ldaps://b:636", false);
        let text = m.render();
        assert!(
            text.contains("authgate_ldap_server_up{uri=\"ldaps://a:636\"} 1"),
            "{text}"
        );
        assert!(text.contains("authgate_ldap_server_up{uri=\"ldaps://b:636\"} 0"));
    }
}
