//! Compiles `proto/` with protox (no system `protoc` needed), writes the
//! encoded descriptor set for gRPC reflection, the web console's schema
//! (`schema.json`: messages, enums and methods, for its protobuf codec) and
//! the list of the console's files to embed in `otcd`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = "../proto";
    let file = "../proto/otc/v1/otc.proto";
    println!("cargo:rerun-if-changed={file}");
    println!("cargo:rerun-if-changed=console");
    let fds = protox::compile([file], [proto_dir])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("otc_descriptor.bin"), fds.encode_to_vec())?;
    std::fs::write(out.join("console_schema.json"), schema(&fds)?)?;
    std::fs::write(out.join("console_assets.rs"), assets(Path::new("console"))?)?;
    std::fs::write(out.join("request_types.rs"), request_types(&fds))?;
    tonic_prost_build::configure()
        .codec_path("crate::codec::ProtoCodec")
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}

/// The messages the services take (no service returns one of them): what
/// the codec decodes as a server, so a malformed one is the caller's fault.
fn request_types(fds: &FileDescriptorSet) -> String {
    let mut names: Vec<&str> = fds
        .file
        .iter()
        .flat_map(|f| &f.service)
        .flat_map(|s| &s.method)
        .map(|m| m.input_type().rsplit('.').next().unwrap_or_default())
        .collect();
    names.sort_unstable();
    names.dedup();
    format!("/// The messages the services take.\nconst REQUEST_TYPES: &[&str] = &{names:?};\n")
}

/// The console's view of the proto: every message's fields by number, every
/// enum's names, every method's input and output types.
fn schema(fds: &FileDescriptorSet) -> Result<String, Box<dyn std::error::Error>> {
    let mut messages = BTreeMap::new();
    let mut enums = BTreeMap::new();
    let mut methods = BTreeMap::new();
    for f in &fds.file {
        let package = f.package();
        for m in &f.message_type {
            message(package, m, &mut messages, &mut enums);
        }
        for e in &f.enum_type {
            enum_names(&format!("{package}.{}", e.name()), e, &mut enums);
        }
        for s in &f.service {
            for m in &s.method {
                methods.insert(
                    format!("/{package}.{}/{}", s.name(), m.name()),
                    serde_json::json!({
                        "input": m.input_type().trim_start_matches('.'),
                        "output": m.output_type().trim_start_matches('.'),
                        "server_streaming": m.server_streaming(),
                        "client_streaming": m.client_streaming(),
                    }),
                );
            }
        }
    }
    let json = serde_json::json!({ "messages": messages, "enums": enums, "methods": methods });
    Ok(serde_json::to_string(&json)?)
}

fn message(
    scope: &str,
    m: &DescriptorProto,
    messages: &mut BTreeMap<String, serde_json::Value>,
    enums: &mut BTreeMap<String, serde_json::Value>,
) {
    let name = format!("{scope}.{}", m.name());
    let fields: Vec<serde_json::Value> = m
        .field
        .iter()
        .map(|f| {
            let mut v = serde_json::json!({
                "no": f.number(),
                "name": f.name(),
                "type": type_name(f.r#type()),
            });
            if matches!(f.r#type(), Type::Message | Type::Enum | Type::Group) {
                v["ref"] = f.type_name().trim_start_matches('.').into();
            }
            if f.label() == Label::Repeated {
                v["repeated"] = true.into();
            }
            v
        })
        .collect();
    messages.insert(name.clone(), fields.into());
    for nested in &m.nested_type {
        message(&name, nested, messages, enums);
    }
    for e in &m.enum_type {
        enum_names(&format!("{name}.{}", e.name()), e, enums);
    }
}

fn enum_names(
    name: &str,
    e: &prost_types::EnumDescriptorProto,
    enums: &mut BTreeMap<String, serde_json::Value>,
) {
    let values: serde_json::Map<String, serde_json::Value> = e
        .value
        .iter()
        .map(|v| (v.number().to_string(), v.name().into()))
        .collect();
    enums.insert(name.to_owned(), values.into());
}

fn type_name(t: Type) -> &'static str {
    match t {
        Type::Double => "double",
        Type::Float => "float",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Int32 => "int32",
        Type::Fixed64 => "fixed64",
        Type::Fixed32 => "fixed32",
        Type::Bool => "bool",
        Type::String => "string",
        Type::Group | Type::Message => "message",
        Type::Bytes => "bytes",
        Type::Uint32 => "uint32",
        Type::Enum => "enum",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
    }
}

/// `pub static ASSETS: &[(&str, &[u8])]`: every file under `dir` by its URL
/// path, embedded with `include_bytes!`.
fn assets(dir: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let root = std::fs::canonicalize(dir)?;
    let mut files = Vec::new();
    walk(&root, &mut files)?;
    files.sort();
    let mut out = String::from(
        "/// The console's files by URL path.\npub static ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for f in files {
        let rel = f.strip_prefix(&root)?;
        let url: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        // The path is joined at compile time from the crate's own directory,
        // not written out whole: a target dir shared by two checkouts reuses
        // this file, and must not embed the other checkout's console.
        out.push_str(&format!(
            "    ({:?}, include_bytes!(concat!(env!(\"CARGO_MANIFEST_DIR\"), {:?}))),\n",
            format!("/{}", url.join("/")),
            format!("/console/{}", url.join("/")),
        ));
    }
    out.push_str("];\n");
    Ok(out)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        // Editors' swap and backup files are not assets.
        if name
            .as_deref()
            .is_some_and(|n| n.starts_with('.') || n.ends_with('~'))
        {
            continue;
        }
        if path.is_dir() {
            walk(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}
