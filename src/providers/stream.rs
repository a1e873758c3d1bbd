//! Holding a gate's admission for as long as a stream runs, and settling it at the end.

use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};

use super::ProviderError;
use super::gate::Admission;

/// `pieces`, which settles `admission` when it ends: as a success after the last piece, as
/// the error if one arrives (which also ends the stream). The first piece's arrival is the
/// call's time to first token. Dropped early, the admission is released unsettled.
pub(super) fn settled(
    pieces: BoxStream<'static, Result<String, ProviderError>>,
    admission: Admission,
) -> BoxStream<'static, Result<String, ProviderError>> {
    stream::unfold(Some((pieces, admission)), |open| async move {
        let (mut pieces, mut admission) = open?;
        match pieces.next().await {
            Some(Ok(piece)) => {
                admission.first_piece();
                Some((Ok(piece), Some((pieces, admission))))
            }
            Some(Err(e)) => {
                admission.settle(Err(&e)).await;
                Some((Err(e), None))
            }
            None => {
                admission.settle(Ok(None)).await;
                None
            }
        }
    })
    .boxed()
}
