//! Reading a leg's stored messages back (the blob format is the `msgblob` crate's).

use calls::LegMessage;

pub(crate) use msgblob::Encoder;

pub(crate) fn decode_stored(
    leg_id: crate::LegId,
    row: Option<(i64, Vec<u8>)>,
) -> crate::Result<Vec<LegMessage>> {
    let Some((count, blob)) = row else {
        return Ok(Vec::new());
    };
    let messages = msgblob::decode(&blob)
        .map_err(|reason| crate::StoreError::CorruptMessages { leg_id, reason })?;
    if messages.len() as i64 != count {
        return Err(crate::StoreError::CorruptMessages {
            leg_id,
            reason: "message count does not match the stored count",
        });
    }
    Ok(messages)
}
