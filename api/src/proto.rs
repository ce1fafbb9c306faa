//! Generated protobuf types and services (package `otc.v1`), and the encoded
//! descriptor set served by reflection. Only this crate knows protobuf.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("otc.v1");

/// The encoded `FileDescriptorSet` of `proto/otc/v1/otc.proto`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/otc_descriptor.bin"));
