//! `SetFundPassword` (SPEC §6): the engine decides whether a current
//! password is needed, asked first so a doomed change spends no argon2.

use otc_engine::Command;
use otc_engine::command::FundPasswordProof;
use tonic::{Request, Response, Status};

use super::Trading;
use crate::common::{TRADERS, caller};
use crate::core::clock_now;
use crate::pipeline::{ClientRequest, mutate_with_passwords};
use crate::proto as pb;
use crate::requests;

impl Trading {
    /// `SetFundPassword`: the first password, or a change that needs the
    /// current one (SPEC §6). Both passwords count in the request's
    /// fingerprint through a keyed tag (see [`crate::pipeline`]).
    pub(super) async fn change_fund_password(
        &self,
        req: Request<pb::SetFundPasswordRequest>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let c = caller(&self.core, &req, TRADERS)?;
        let mut r = req.into_inner();
        let rid = r.take_request_id();
        // Secrets stay out of the fingerprint (see `pipeline`).
        let new_password = std::mem::take(&mut r.new_password);
        let current_password = std::mem::take(&mut r.current_password);
        let passwords = [new_password.as_str(), current_password.as_str()];
        mutate_with_passwords(
            &self.core,
            c.user,
            "SetFundPassword",
            &rid,
            &r,
            &passwords,
            async {
                requests::new_password(&new_password)?;
                let given = !current_password.is_empty();
                if given {
                    requests::password("current_password", &current_password)?;
                }
                // Whether a current password is needed is the engine's rule;
                // asked first, so a doomed change spends no argon2. It still goes
                // to the writer, unhashed and unchecked: the engine refuses it
                // there, and the refusal is stored for the request id's retries.
                let doomed = {
                    let w = self.core.read().await?;
                    let e = w.engine();
                    e.may_set_fund_password(c.user, given, clock_now())
                        .is_err()
                        .then(|| e.fund_password(c.user).map(|(_, version)| version))
                };
                let (hash, current) = match doomed {
                    Some(version) => (
                        String::new(),
                        version.filter(|_| given).map(FundPasswordProof::unchecked),
                    ),
                    None => {
                        let current = if given {
                            let checked = self.core.check_password(c.user, &current_password);
                            Some(checked.await?.proof)
                        } else {
                            None
                        };
                        (
                            self.core
                                .hash_password(c.user, new_password.clone())
                                .await?,
                            current,
                        )
                    }
                };
                Ok(Command::SetFundPassword {
                    user: c.user,
                    hash,
                    current,
                }
                .into())
            },
        )
        .await
    }
}
