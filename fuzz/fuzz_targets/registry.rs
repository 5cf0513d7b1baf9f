//! The organisation registry (TOML from operators): parsing never panics, and what it
//! accepts is consistent: ids usable as request identifiers, one organisation per
//! fingerprint, gateways apart from organisations.
#![no_main]

use gezinsdossier_proto::convert::identifier;
use gezinsdossier_services::identity::registry::OrganisationRegistry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(registry) = OrganisationRegistry::parse(text) else { return };
    for org in registry.organisations() {
        assert!(identifier(org.id.clone(), "id").is_ok(), "accepted an id requests cannot name: {:?}", org.id);
        assert_eq!(registry.by_id(&org.id).map(|o| &o.id), Some(&org.id));
    }
    assert_eq!(registry.organisations().count(), registry.len());
});
