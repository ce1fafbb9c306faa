//! The gate's tests: reservations from the length prefix, the pools, and
//! each caller's share.

use super::*;

/// A body's counting (`count` is fed directly: no inner body).
fn counted(budget: &Arc<Budget>) -> Counted<()> {
    counted_for(budget, UserId(uuid::Uuid::new_v4()))
}

fn counted_for(budget: &Arc<Budget>, user: UserId) -> Counted<()> {
    Counted {
        inner: (),
        share: Some(Arc::new(Share::new(budget, user))),
        framing: Framing::default(),
    }
}

/// A gRPC message's prefix announcing `len` bytes.
fn prefix(len: u32) -> Vec<u8> {
    let mut p = vec![0u8];
    p.extend_from_slice(&len.to_be_bytes());
    p
}

#[test]
fn a_message_is_reserved_whole_from_its_prefix_and_given_back_when_let_go() {
    const FREE: u64 = BODY_FREE_BYTES;
    let budget = Arc::new(Budget::new(100_000, 100_000));
    // A small call: the calls' pool only, from its prefix (split across
    // two frames), before any of its bytes.
    let mut small = counted(&budget);
    small.count(&prefix(300)[..2]).expect("half a prefix");
    assert_eq!(budget.calls.held(), 0);
    small.count(&prefix(300)[2..]).expect("fits");
    assert_eq!((budget.calls.held(), budget.uploads.held()), (305, 0));
    small.count(&[7; 300]).expect("the announced bytes");
    assert_eq!(budget.calls.held(), 305);
    // An upload: its first FREE bytes from the calls' pool, the rest
    // from the upload budget, all at its prefix.
    let mut a = counted(&budget);
    let len = u32::try_from(FREE + 60_000 - 5).expect("small");
    a.count(&prefix(len)).expect("fits");
    assert_eq!(budget.uploads.held(), 60_000);
    // Another does not fit beside it: refused at its prefix, holding
    // nothing.
    let mut b = counted(&budget);
    let e = b.count(&prefix(len)).expect_err("over the budget");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert!(e.message().contains("--uploads-in-flight-max"), "{e:?}");
    assert_eq!(budget.uploads.held(), 60_000);
    assert_eq!(budget.calls.held(), 305 + FREE);
    drop(b);
    // A hold kept past the call (a job in the writer's queue) keeps
    // the reservation until it too is let go.
    let hold = Hold {
        _share: Arc::clone(a.share.as_ref().expect("share")),
    };
    drop(a);
    assert_eq!(budget.uploads.held(), 60_000);
    drop(hold);
    assert_eq!(budget.uploads.held(), 0);
    drop(small);
    assert_eq!(budget.calls.held(), 0);
    // The whole budget again, in one message.
    let mut c = counted(&budget);
    let len = u32::try_from(FREE + 100_000 - 5).expect("small");
    c.count(&prefix(len)).expect("the whole budget");
}

#[test]
fn the_calls_pool_bounds_small_bodies_too() {
    let budget = Arc::new(Budget::new(1, 1));
    let len = u32::try_from(BODY_FREE_BYTES - 5).expect("small");
    let mut held = Vec::new();
    for _ in 0..CALL_BYTES_MAX / BODY_FREE_BYTES {
        let mut c = counted(&budget);
        c.count(&prefix(len)).expect("fits");
        held.push(c);
    }
    let mut c = counted(&budget);
    let e = c.count(&prefix(1)).expect_err("the calls' pool is full");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    held.pop();
    c.count(&prefix(1)).expect("room again");
    drop((held, c));
    assert!(budget.by_caller.is_empty(), "no caller holds anything");
}

#[test]
fn one_caller_holds_at_most_its_share_of_each_pool() {
    let budget = Arc::new(Budget::new(1 << 30, 1 << 20));
    let user = UserId(uuid::Uuid::new_v4());
    // Calls: 64 announcing the most a call without a file may.
    let len = u32::try_from(BODY_FREE_BYTES - 5).expect("small");
    let mut held: Vec<_> = (0..64)
        .map(|_| {
            let mut c = counted_for(&budget, user);
            c.count(&prefix(len)).expect("within the caller's share");
            c
        })
        .collect();
    let mut c = counted_for(&budget, user);
    let e = c.count(&prefix(1)).expect_err("past the caller's share");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    // Another caller is not held back.
    let mut other = counted(&budget);
    other.count(&prefix(len)).expect("another caller");
    held.clear();
    // Uploads: four of the largest message at once, not five.
    let big = u32::try_from((1 << 20) + BODY_FREE_BYTES - 5).expect("small");
    let mut ups: Vec<_> = (0..CALLER_UPLOADS)
        .map(|_| {
            let mut c = counted_for(&budget, user);
            c.count(&prefix(big)).expect("four fit");
            c
        })
        .collect();
    let mut third = counted_for(&budget, user);
    let e = third.count(&prefix(big)).expect_err("a fifth does not");
    assert!(e.message().contains("4 of the largest"), "{e:?}");
    ups.pop();
    third.count(&prefix(big)).expect("room again");
    drop((ups, third, c, other));
    assert_eq!((budget.calls.held(), budget.uploads.held()), (0, 0));
    assert!(budget.by_caller.is_empty());
}

/// A service that never answers.
#[derive(Clone)]
struct Never;

impl Service<Request<Counted<()>>> for Never {
    type Response = Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::future::Pending<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Counted<()>>) -> Self::Future {
        std::future::pending()
    }
}

/// A call not answered within the deadline ends CANCELLED; a streamed bill
/// does not (its chunks bound it, one at a time).
#[tokio::test]
async fn the_deadline_ends_a_call_but_not_a_streamed_bill() {
    let secret = b"secret";
    let auth = Arc::new(Authenticator::new(secret));
    let budget = Arc::new(Budget::new(100_000, 100_000));
    let token = crate::auth::mint(
        secret,
        uuid::Uuid::new_v4(),
        crate::auth::Role::Support,
        3_600,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let deadline = Duration::from_millis(50);
    let mut gate =
        tower_layer::Layer::layer(&GateLayer::new(auth, budget).with_deadline(deadline), Never);
    let request = |path: &str| {
        Request::builder()
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let unary = gate.call(request("/otc.v1.SupportService/ListAppeals"));
    let bill = gate.call(request(STREAMED_UPLOADS[0]));
    let answered = unary.await.unwrap_or_else(|e| match e {});
    let status = Status::from_header_map(answered.headers()).expect("a status");
    assert_eq!(status.code(), tonic::Code::Cancelled, "{status:?}");
    assert!(
        tokio::time::timeout(deadline * 6, bill).await.is_err(),
        "a streamed bill is not cut by the deadline"
    );
}
