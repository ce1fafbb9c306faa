//! Appeals (申诉, SPEC §11): who opened them, the evidence, the claim and the
//! outcome. The trade's own state says whether it is still open.

use serde::{Deserialize, Serialize};

use crate::command::{AttachmentRef, Resolution};
use crate::event::SettledBy;
use crate::ids::{EvidenceId, Timestamp, TradeId, UserId};
use crate::trade::Actor;

/// One piece of evidence: a description and maybe a stored file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Its id.
    pub id: EvidenceId,
    /// Who added it (a party of the trade).
    pub by: UserId,
    /// When.
    pub at: Timestamp,
    /// What it shows, in the party's words (visible to both parties and CS).
    pub description: String,
    /// The file, visible to its uploader and CS only.
    pub attachment: Option<AttachmentRef>,
}

/// How an appeal ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppealOutcome {
    /// CS decided.
    Resolved {
        /// The agent.
        agent: UserId,
        /// Release or refund.
        resolution: Resolution,
        /// The agent's note (required, audit-logged).
        note: String,
        /// When.
        at: Timestamp,
    },
    /// The parties settled it.
    Settled {
        /// How.
        how: SettledBy,
        /// When.
        at: Timestamp,
    },
}

/// Where an appeal is in the CS workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppealStatus {
    /// Waiting for an agent.
    Open,
    /// An agent holds it.
    Claimed,
    /// Decided or settled.
    Closed,
}

/// A dispute on a paid trade. Keyed by its trade: a trade is appealed at most once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appeal {
    /// The trade.
    pub trade: TradeId,
    /// Seller, buyer or the system (auto-appeal).
    pub opened_by: Actor,
    /// Why, in the opener's words.
    pub reason: String,
    /// When.
    pub opened_at: Timestamp,
    /// Evidence so far.
    pub evidence: Vec<Evidence>,
    /// The agent holding it.
    pub claimed_by: Option<UserId>,
    /// The end, once there is one.
    pub outcome: Option<AppealOutcome>,
}

impl Appeal {
    /// Its status in the CS queue.
    pub fn status(&self) -> AppealStatus {
        match (&self.outcome, self.claimed_by) {
            (Some(_), _) => AppealStatus::Closed,
            (None, Some(_)) => AppealStatus::Claimed,
            (None, None) => AppealStatus::Open,
        }
    }

    /// Files attached so far.
    pub fn attachments(&self) -> usize {
        self.evidence
            .iter()
            .filter(|e| e.attachment.is_some())
            .count()
    }
}
