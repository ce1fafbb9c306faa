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
        /// Write here, replacing what is there (default: the uploaded file's
        /// name in the current directory, never replacing a file).
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
            let path = match output {
                Some(path) => {
                    std::fs::write(path, &file.data)
                        .map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))?;
                    path.clone()
                }
                None => {
                    // The name is the uploader's: only its last part, in
                    // the current directory, and never over a file.
                    let path = std::path::PathBuf::from(local_name(&file.file_name, id));
                    let mut out = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&path)
                        .map_err(|e| {
                            Failure(format!(
                                "cannot write {}: {e} (choose a path with -o)",
                                path.display()
                            ))
                        })?;
                    std::io::Write::write_all(&mut out, &file.data)
                        .map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))?;
                    path
                }
            };
            if cli.json {
                println!(
                    "{}",
                    json!({"path": path.display().to_string(), "bytes": file.data.len(), "type": file.content_type})
                );
            } else {
                outln!(
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

/// Where an uploaded `name` is saved when no path is given: its last part
/// (no directories, not hidden), else the evidence `id`.
fn local_name(name: &str, id: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let ok = !last.is_empty() && !last.starts_with('.') && !last.chars().any(char::is_control);
    if ok { last.to_owned() } else { id.to_owned() }
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
                    page_size: 0,
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

#[cfg(test)]
mod tests {
    use super::local_name;

    #[test]
    fn an_uploaded_name_is_saved_here_without_its_directories() {
        assert_eq!(local_name("receipt.pdf", "E-1"), "receipt.pdf");
        assert_eq!(local_name("../../.bashrc", "E-1"), "E-1");
        assert_eq!(
            local_name("/home/agent/.ssh/authorized_keys", "E-1"),
            "authorized_keys"
        );
        assert_eq!(local_name("..\\..\\evil.png", "E-2"), "evil.png");
        assert_eq!(local_name("dir/", "E-3"), "E-3");
        assert_eq!(local_name("..", "E-4"), "E-4");
        assert_eq!(local_name("", "E-5"), "E-5");
        assert_eq!(local_name("a\nb.png", "E-6"), "E-6");
    }
}
