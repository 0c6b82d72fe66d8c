//! `breakwater sim --replicas`: fleets of breakwater replicas on one simulated API, breakers
//! shared through one in-memory store or deciding alone, in virtual time (deterministic for
//! a seed). A short outage of the primary: sharing must waste fewer attempts and send one
//! probe per open period fleet-wide where alone every replica sends its own; with the store
//! down, sharing falls back to deciding alone and does exactly what alone does.

use std::time::Duration;

use breakwater::sim::SimScenario;
use breakwater::sim::fleet::{FleetOptions, FleetRow, StoreOutage, Variant, run_fleet};

/// 90 s at 8 requests/s; the primary answers nothing but 529 from 10 s to 70 s.
fn outage() -> SimScenario {
    let text = r#"
duration = "90s"
seed = 3
rps = 8.0
deadline = "30s"
chain = ["primary", "fallback"]
incident = { start = "10s", end = "70s" }

[models.primary]
slots = 40
service-time = "3s"
distribution = "uniform"
service-time-spread = "1s"
brownouts = [{ start = "10s", end = "70s", fraction = 0.0 }]

[models.fallback]
slots = 30
service-time = "1500ms"
distribution = "uniform"
service-time-spread = "500ms"
"#;
    SimScenario::from_toml(text).unwrap_or_else(|e| panic!("{e}"))
}

fn fleet(replicas: u32, variant: Variant, options: &FleetOptions) -> FleetRow {
    let row = run_fleet(&outage(), replicas, variant, options, None, |_, _| {}).unwrap();
    // Whatever the fleet, every request is answered (the fallback is healthy) by its deadline.
    assert_eq!(row.answered, row.requests, "{row:#?}");
    assert!(row.latency_ms.max <= 30_000.0, "{row:#?}");
    assert_eq!(row.rate_limited, 0, "no model here rate-limits: {row:#?}");
    row
}

fn both(replicas: u32, options: &FleetOptions) -> (FleetRow, FleetRow) {
    (
        fleet(replicas, Variant::Shared, options),
        fleet(replicas, Variant::Local, options),
    )
}

fn probes_per_open_period(row: &FleetRow) -> f64 {
    row.probes_per_open_period
        .unwrap_or_else(|| panic!("a breaker opened: {row:#?}"))
}

#[test]
fn three_replicas_sharing_waste_fewer_attempts_and_probe_once_per_open_period() {
    let (shared, local) = both(3, &FleetOptions::default());
    assert!(
        shared.wasted_attempts < local.wasted_attempts,
        "{shared:#?}\n{local:#?}"
    );
    let (shared_ppop, local_ppop) = (
        probes_per_open_period(&shared),
        probes_per_open_period(&local),
    );
    assert!(shared_ppop <= 1.5, "{shared:#?}");
    assert!(local_ppop >= 2.0, "{local:#?}");
    assert_eq!(local.fleet_opens, 0);
}

#[test]
fn ten_replicas_sharing_waste_far_fewer_attempts_and_about_ten_times_fewer_probes() {
    let (shared, local) = both(10, &FleetOptions::default());
    // Until the attempts started before the outage have ended, 529s are a shortage (the
    // adaptive limits' to answer), not evidence against the primary, alone or shared: that
    // first stretch costs both about the same. Past it, the fleet trips once on five
    // failures where alone each replica needs its own five, and probes once where alone
    // each replica probes for itself.
    assert!(
        shared.wasted_attempts + 4 * 9 <= local.wasted_attempts,
        "{shared:#?}\n{local:#?}"
    );
    let ratio = probes_per_open_period(&local) / probes_per_open_period(&shared);
    assert!(ratio >= 8.0, "{ratio}\n{shared:#?}\n{local:#?}");
    // The fleet trips once on the fleet's evidence; alone, each replica trips on its own.
    assert!(
        shared.fleet_opens >= 1 && shared.local_opens == 0,
        "{shared:#?}"
    );
    assert!(local.local_opens >= 10, "{local:#?}");
}

#[test]
fn with_the_store_down_for_the_whole_run_sharing_is_deciding_alone() {
    let options = FleetOptions {
        store_outage: Some(StoreOutage {
            start: Duration::ZERO,
            end: Duration::from_secs(3600),
        }),
        ..FleetOptions::default()
    };
    let (shared, local) = both(3, &options);
    assert_eq!(shared.fleet_opens, 0, "{shared:#?}");
    let figures = |row: &FleetRow| {
        (
            row.attempts,
            row.wasted_attempts,
            row.primary_incident_attempts,
            row.probes,
            row.local_opens,
        )
    };
    assert_eq!(figures(&shared), figures(&local), "{shared:#?}\n{local:#?}");
}

#[test]
fn a_store_outage_during_the_incident_still_answers_everything() {
    let options = FleetOptions {
        store_outage: Some("20s..40s".parse().unwrap()),
        store_latency: Duration::from_millis(5),
        ..FleetOptions::default()
    };
    let (shared, local) = both(10, &options);
    // Down from 20 s, the replicas decide alone until it is back, then follow the fleet.
    assert!(
        shared.wasted_attempts <= local.wasted_attempts,
        "{shared:#?}\n{local:#?}"
    );
}
