//! Host bindings generated from `wit/` (package `orbit:runtime@0.1.0`).
//!
//! Every primitive crate implements the `Host` trait of its own interface
//! from here, so the WIT stays the single source of truth.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "agent",
    imports: { default: async | trappable },
    exports: { default: async },
});
