//! Appeals in progress (SPEC §11) and trade chat (§11a): evidence and
//! attachments, chat, the CS queue, claim, hand back and resolve.

use crate::appeal::{Appeal, AppealStatus, Evidence};
use crate::command::{AttachmentRef, Resolution};
use crate::engine::Engine;
use crate::event::EventKind;
use crate::ids::{EvidenceId, Timestamp, TradeId, UserId};
use crate::rejection::Rejection;
use crate::trade::{Actor, TimelineEntry, TimelineWhat, TradeAction};

/// Content types accepted as evidence attachments (SPEC §11: images and PDF).
pub const ATTACHMENT_TYPES: [&str; 4] =
    ["image/png", "image/jpeg", "image/webp", "application/pdf"];
/// Longest attachment file name, in bytes.
pub const FILE_NAME_BYTES_MAX: usize = 255;

// The actions named when a trade's state refuses them.
pub(crate) const CHAT_ON: &str = "chat on";
pub(crate) const ADD_EVIDENCE: &str = "add evidence to";
pub(crate) const CLAIM: &str = "claim the appeal of";
pub(crate) const UNCLAIM: &str = "hand back the appeal of";
pub(crate) const RESOLVE: &str = "resolve";

impl Engine {
    // ---- appeals ------------------------------------------------------------

    /// The open appeal of a trade. A trade without one (or whose appeal has
    /// ended) refuses naming the trade's state, like any other wrong-state action.
    fn open_appeal_of(&self, id: TradeId, action: &'static str) -> Result<&Appeal, Rejection> {
        let t = self
            .state
            .trades
            .get(&id)
            .ok_or(Rejection::TradeNotFound(id))?;
        match self.state.appeals.get(&id) {
            Some(a) if a.outcome.is_none() => Ok(a),
            _ => Err(t.wrong_state(action)),
        }
    }

    /// Checks an attachment's metadata: id, type, size and name (SPEC §11).
    fn check_file(&self, a: &AttachmentRef) -> Result<(), Rejection> {
        if a.blob_id.is_empty() || a.blob_id.len() > FILE_NAME_BYTES_MAX {
            return Err(Rejection::field("attachment.blob_id", "is missing"));
        }
        if !ATTACHMENT_TYPES.contains(&a.content_type.as_str()) {
            return Err(Rejection::field(
                "attachment.content_type",
                "must be image/png, image/jpeg, image/webp or application/pdf",
            ));
        }
        let max = self.config.attachment_bytes_max;
        if a.size_bytes == 0 || a.size_bytes > max {
            return Err(Rejection::field(
                "attachment.data",
                format!("must be 1 to {max} bytes"),
            ));
        }
        if a.file_name.len() > FILE_NAME_BYTES_MAX {
            return Err(Rejection::field(
                "attachment.file_name",
                format!("must be at most {FILE_NAME_BYTES_MAX} bytes"),
            ));
        }
        if let Some(why) = crate::args::control_in(&a.file_name, false) {
            return Err(Rejection::field("attachment.file_name", why));
        }
        Ok(())
    }

    pub(crate) fn post_chat(
        &mut self,
        user: UserId,
        id: TradeId,
        text: &str,
        attachment: Option<&AttachmentRef>,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let (t, _) = self.party_trade(user, id)?;
        if !t.state.is_open() {
            return Err(t.wrong_state(CHAT_ON));
        }
        let (seller, buyer, chat) = (t.seller, t.buyer, t.chat);
        self.text_arg_max(
            "text",
            text,
            attachment.is_none(),
            self.config.chat_chars_max,
        )?;
        if let Some(a) = attachment {
            self.check_file(a)?;
        }
        let messages_max = self.config.chat_messages_per_trade_max;
        if chat.messages >= messages_max {
            return Err(Rejection::LimitReached {
                what: "chat messages per trade",
                max: messages_max.into(),
            });
        }
        let files_max = self.config.chat_files_per_trade_max;
        if attachment.is_some() && chat.files >= files_max {
            return Err(Rejection::LimitReached {
                what: "chat files per trade",
                max: files_max.into(),
            });
        }
        let count = &mut self.trade_mut(id).chat;
        count.messages += 1;
        count.files += u32::from(attachment.is_some());
        let kind = EventKind::ChatPosted {
            trade: id,
            seller,
            buyer,
            author: user,
            text: text.to_owned(),
            attachment: attachment.cloned(),
        };
        self.emit(now, kind);
        Ok(())
    }

    fn check_attachment(&self, a: &AttachmentRef, appeal: &Appeal) -> Result<(), Rejection> {
        self.check_file(a)?;
        let files_max = self.config.attachments_per_appeal_max;
        if appeal.attachments() >= files_max as usize {
            return Err(Rejection::LimitReached {
                what: "attachments per appeal",
                max: files_max.into(),
            });
        }
        Ok(())
    }

    pub(crate) fn add_evidence(
        &mut self,
        user: UserId,
        id: TradeId,
        description: &str,
        attachment: Option<&AttachmentRef>,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let (t, _) = self.party_trade(user, id)?;
        let (seller, buyer) = (t.seller, t.buyer);
        let appeal = self.open_appeal_of(id, ADD_EVIDENCE)?;
        self.text_arg("description", description, true)?;
        if let Some(a) = attachment {
            self.check_attachment(a, appeal)?;
        }
        let max = self.config.evidence_per_appeal_max;
        if appeal.evidence.len() >= max as usize {
            return Err(Rejection::LimitReached {
                what: "evidence items per appeal",
                max: max.into(),
            });
        }
        let evidence = EvidenceId(self.next_id());
        let item = Evidence {
            id: evidence,
            by: user,
            at: now,
            description: description.to_owned(),
            attachment: attachment.cloned(),
        };
        self.appeal_mut(id).evidence.push(item);
        let actor = if user == buyer {
            Actor::Buyer(user)
        } else {
            Actor::Seller(user)
        };
        self.timeline(id, actor, TimelineWhat::EvidenceAdded(evidence), now);
        self.emit(
            now,
            EventKind::EvidenceAdded {
                trade: id,
                seller,
                buyer,
                evidence,
                by: user,
            },
        );
        Ok(())
    }

    fn timeline(&mut self, id: TradeId, actor: Actor, what: TimelineWhat, now: Timestamp) {
        let t = self.trade_mut(id);
        t.timeline.push(TimelineEntry {
            at: now,
            actor,
            what,
        });
    }

    pub(crate) fn claim_appeal(
        &mut self,
        agent: UserId,
        id: TradeId,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let a = self.open_appeal_of(id, CLAIM)?;
        // A party holding its own appeal would lock every other agent out
        // of it (it may not resolve it either).
        if self
            .trade(id)
            .is_some_and(|t| t.buyer == agent || t.seller == agent)
        {
            return Err(Rejection::NotAllowed(
                "an agent cannot claim an appeal on their own trade",
            ));
        }
        match a.claimed_by {
            Some(holder) if holder == agent => return Ok(()), // Already theirs.
            Some(holder) => return Err(Rejection::ClaimedByOther { trade: id, holder }),
            None => {}
        }
        self.appeal_mut(id).claimed_by = Some(agent);
        self.timeline(id, Actor::Support(agent), TimelineWhat::AppealClaimed, now);
        self.emit(now, EventKind::AppealClaimed { trade: id, agent });
        Ok(())
    }

    pub(crate) fn unclaim_appeal(
        &mut self,
        agent: UserId,
        id: TradeId,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        let a = self.open_appeal_of(id, UNCLAIM)?;
        match a.claimed_by {
            Some(holder) if holder == agent => {}
            Some(holder) => return Err(Rejection::ClaimedByOther { trade: id, holder }),
            None => {
                return Err(Rejection::WrongState {
                    what: "appeal on trade",
                    id: id.to_string(),
                    state: "UNCLAIMED",
                    action: "hand back",
                });
            }
        }
        self.appeal_mut(id).claimed_by = None;
        self.timeline(
            id,
            Actor::Support(agent),
            TimelineWhat::AppealUnclaimed,
            now,
        );
        self.emit(now, EventKind::AppealUnclaimed { trade: id, agent });
        Ok(())
    }

    pub(crate) fn resolve_appeal(
        &mut self,
        agent: UserId,
        id: TradeId,
        resolution: Resolution,
        note: &str,
        now: Timestamp,
    ) -> Result<(), Rejection> {
        self.text_arg("note", note, true)?;
        let a = self.open_appeal_of(id, RESOLVE)?;
        if let Some(holder) = a.claimed_by
            && holder != agent
        {
            return Err(Rejection::ClaimedByOther { trade: id, holder });
        }
        let d = self.decide(id, Some(agent), TradeAction::Resolve(resolution), now)?;
        self.transition(id, d, note, now);
        Ok(())
    }

    /// Appeals in the CS queue (open or claimed), oldest first.
    pub fn appeal_queue(&self) -> impl Iterator<Item = &Appeal> {
        self.state
            .appeal_queue
            .iter()
            .filter_map(|(_, id)| self.state.appeals.get(id))
    }

    /// Appeals in the CS queue after the appeal of `after` (exclusive),
    /// oldest first, found in O(log n) however deep the page. Nothing when
    /// `after` names no appeal the engine holds.
    pub fn appeal_queue_after(&self, after: TradeId) -> impl Iterator<Item = &Appeal> {
        // An unknown appeal starts past the end: an empty page, never a repeat.
        let opened_at = self
            .state
            .appeals
            .get(&after)
            .map_or(Timestamp(i64::MAX), |a| a.opened_at);
        self.appeal_queue_past(opened_at, after)
    }

    /// Appeals in the CS queue past the key (opened at, trade), exclusive,
    /// oldest first: a page token that holds the key stays good after its
    /// appeal left the queue and the engine forgot it.
    pub fn appeal_queue_past(
        &self,
        opened_at: Timestamp,
        trade: TradeId,
    ) -> impl Iterator<Item = &Appeal> {
        use std::ops::Bound::{Excluded, Unbounded};
        let range = self
            .state
            .appeal_queue
            .range((Excluded((opened_at, trade)), Unbounded));
        range.filter_map(|(_, id)| self.state.appeals.get(id))
    }

    /// Appeals with a given status, oldest first (closed ones by trade id).
    pub fn appeals_with(&self, status: AppealStatus) -> Vec<&Appeal> {
        match status {
            AppealStatus::Closed => self
                .state
                .appeals
                .values()
                .filter(|a| a.status() == status)
                .collect(),
            _ => self
                .appeal_queue()
                .filter(|a| a.status() == status)
                .collect(),
        }
    }
}
