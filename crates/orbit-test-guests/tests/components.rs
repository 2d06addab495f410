//! Every listed guest was built and is a WebAssembly component.

/// `\0asm`, then version 0x0d and layer 1 (component), little-endian.
const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

#[test]
fn every_guest_is_a_component() {
    for name in orbit_test_guests::names() {
        let path = orbit_test_guests::path(name);
        assert!(path.is_file(), "{name}: {} is missing", path.display());
        let bytes = orbit_test_guests::bytes(name);
        assert!(bytes.len() >= 8, "{name}: only {} bytes", bytes.len());
        assert_eq!(
            bytes[..8],
            COMPONENT_HEADER,
            "{name}: {} is not a component (header {:02x?})",
            path.display(),
            &bytes[..8]
        );
    }
}
