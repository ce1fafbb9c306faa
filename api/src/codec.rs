//! The protobuf codec of every generated service and client: prost's, save
//! that a request that does not decode is INVALID_ARGUMENT naming its type
//! (SPEC §15: malformed input), not prost's INTERNAL, which reads as a
//! server fault and would page whoever watches the error rate. A reply that
//! does not decode (on the client side) stays INTERNAL: not the caller's
//! fault.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};

include!(concat!(env!("OUT_DIR"), "/request_types.rs"));

/// Whether `name` is a message some service takes (from the proto, by
/// `build.rs`).
fn is_request(name: &str) -> bool {
    REQUEST_TYPES.contains(&name)
}

/// `tonic_prost::ProstCodec` with requests' decoding errors as
/// INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct ProtoCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        Self { _pd: PhantomData }
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProtoDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProtoDecoder { _pd: PhantomData }
    }
}

/// Decodes `U`; a malformed message is INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct ProtoDecoder<U> {
    _pd: PhantomData<U>,
}

impl<U: Message + Default> Decoder for ProtoDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| {
            let name = std::any::type_name::<U>();
            let name = name.rsplit("::").next().unwrap_or(name);
            let why = format!("the {name} message is not valid protobuf: {e}");
            if is_request(name) {
                Status::invalid_argument(why)
            } else {
                Status::internal(why)
            }
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests are told from replies by the proto's methods.
    #[test]
    fn requests_are_the_messages_services_take() {
        assert!(is_request("GetTradeRequest") && is_request("BillChunk"));
        assert!(!is_request("Trade") && !is_request("ReconReport"));
    }
}
