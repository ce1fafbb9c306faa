//! Daily statements (SPEC §20): the closing total is the sum of balances,
//! and the next day opens there; a day before the first command balanced
//! at zero.

use super::*;

#[test]
fn statements_close_at_the_sum_of_balances_and_the_next_day_opens_there() {
    let mut w = world();
    let day1 = w.now.utc_day();
    let t1 = w.buy_coin(user(B), "2");
    w.ok(Command::MarkPaid {
        buyer: user(B),
        trade: t1,
    });
    w.release(user(S), t1);
    let _t2 = w.buy_coin(user(B), "3"); // left to time out: returned
    w.advance(minutes(20));
    w.deposit(user(B), "5");
    // The next day: a withdrawal.
    w.advance(MS_PER_DAY);
    let day2 = w.now.utc_day();
    w.ok(Command::Withdraw {
        user: user(B),
        asset: eb(),
        amount: d("1"),
        external_ref: "w-1".into(),
    });
    let s1 = w.e.statement(eb(), day1);
    assert_eq!(s1.flows.deposits.value(), d("105"));
    assert_eq!(s1.flows.released.value(), d("2"));
    assert_eq!(s1.flows.returned.value(), d("3"));
    assert_eq!(s1.closing, d("105"));
    assert!(s1.balanced, "{s1:?}");
    let s2 = w.e.statement(eb(), day2);
    assert_eq!(s2.opening, s1.closing);
    assert_eq!(s2.closing, d("104"));
    assert!(s2.balanced, "{s2:?}");
    // Before the first command, the books held nothing, and balanced.
    for before in [day1 - 1, day1 - 400] {
        let s = w.e.statement(eb(), before);
        assert_eq!((s.closing, s.balances), (d("0"), d("0")), "{s:?}");
        assert!(s.balanced, "{s:?}");
    }
}

/// A day before the first command, asked for while the first day is still
/// today: nothing on the books then either (not today's balances).
#[test]
fn a_day_before_the_first_command_balanced_at_zero_on_the_first_day() {
    let w = world();
    let s = w.e.statement(eb(), w.now.utc_day() - 1);
    assert_eq!((s.closing, s.balances), (d("0"), d("0")), "{s:?}");
    assert!(s.balanced, "{s:?}");
}
