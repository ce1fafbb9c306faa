//! `otcctl evidence`: evidence files.

use clap::Subcommand;
use otc_api::client::Authed;
use otc_api::proto as pb;
use otc_api::proto::support_service_client::SupportServiceClient;
use serde_json::json;

use super::Failure;
use crate::Cli;

#[derive(Subcommand)]
pub enum EvidenceCmd {
    /// Download an evidence file.
    Get {
        /// Evidence id (E-n), or chat-<seq> for a chat attachment.
        id: String,
        /// The trade it belongs to (T-n); found from the appeals when omitted.
        #[arg(long)]
        trade: Option<String>,
        /// Write here (default: the uploaded file name).
        #[arg(short = 'o', long)]
        output: Option<std::path::PathBuf>,
    },
}

/// Runs an `evidence` command.
pub async fn run(cli: &Cli, cmd: &EvidenceCmd) -> Result<(), Failure> {
    match cmd {
        EvidenceCmd::Get { id, trade, output } => {
            let mut c = super::support(cli).await?;
            let trade = match trade {
                Some(t) => t.clone(),
                None => find_evidence_trade(&mut c, id).await?,
            };
            let file = c
                .get_attachment(pb::GetAttachmentRequest {
                    trade_id: trade,
                    attachment_id: id.clone(),
                })
                .await?
                .into_inner();
            let path = output.clone().unwrap_or_else(|| {
                std::path::PathBuf::from(if file.file_name.is_empty() {
                    id.as_str()
                } else {
                    file.file_name.as_str()
                })
            });
            std::fs::write(&path, &file.data)
                .map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))?;
            if cli.json {
                println!(
                    "{}",
                    json!({"path": path.display().to_string(), "bytes": file.data.len(), "type": file.content_type})
                );
            } else {
                println!(
                    "wrote {} ({} bytes, {})",
                    path.display(),
                    file.data.len(),
                    file.content_type
                );
            }
            Ok(())
        }
    }
}

/// The trade whose appeal holds evidence `id` (open, claimed or closed).
async fn find_evidence_trade(
    c: &mut SupportServiceClient<Authed>,
    id: &str,
) -> Result<String, Failure> {
    for status in [pb::AppealStatus::Unspecified, pb::AppealStatus::Closed] {
        let mut page_token = String::new();
        loop {
            let r = c
                .list_appeals(pb::ListAppealsRequest {
                    status: status as i32,
                    mine: false,
                    page_size: 200,
                    page_token,
                })
                .await?
                .into_inner();
            if let Some(a) = r
                .appeals
                .iter()
                .find(|a| a.evidence.iter().any(|e| e.id == id))
            {
                return Ok(a.trade_id.clone());
            }
            if r.next_page_token.is_empty() {
                break;
            }
            page_token = r.next_page_token;
        }
    }
    Err(Failure(format!(
        "no appeal holds evidence {id}; pass --trade T-n"
    )))
}
