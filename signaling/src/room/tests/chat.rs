//! Chat through the harness: a message is numbered and stored first, and goes to the room only
//! once the caller reports the commit.

use super::*;
use crate::wire::CHAT_HISTORY_LEN;

#[test]
fn chat_is_echoed_only_once_stored() {
    let mut h = Harness::new(5);
    h.join(1, "Ann");
    h.join(2, "Bo");
    let out = h.chat(1, "hi all");
    let stored = Harness::to_store(&out);
    assert_eq!(stored.len(), 1);
    let m = &stored[0];
    assert_eq!(
        (m.seq, m.from.as_str(), m.name.as_str(), m.text.as_str()),
        (1, "p1", "Ann", "hi all")
    );
    assert!(
        Harness::sent_to(&out, 1).is_empty() && Harness::sent_to(&out, 2).is_empty(),
        "nobody hears of a message before it is stored: {out:?}"
    );
    assert_eq!(h.room.pending_chat(), 1);
    let out = h.chat_stored(1);
    for conn in [1, 2] {
        assert_eq!(Harness::chats_to(&out, conn), [(1, "hi all".to_string())]);
    }
    assert!(Harness::to_store(&out).is_empty());
    assert_eq!(h.room.pending_chat(), 0);
}

#[test]
fn chat_goes_out_in_seq_order_as_commits_arrive() {
    let mut h = Harness::new(5);
    h.join(1, "Ann");
    h.join(2, "Bo");
    let mut seqs = vec![];
    for (conn, text) in [(1, "a"), (2, "b"), (1, "c")] {
        seqs.extend(Harness::to_store(&h.chat(conn, text)).iter().map(|m| m.seq));
    }
    assert_eq!(seqs, [1, 2, 3]);
    let out = h.chat_stored(2);
    for conn in [1, 2] {
        assert_eq!(
            Harness::chats_to(&out, conn),
            [(1, "a".to_string()), (2, "b".to_string())]
        );
    }
    assert!(
        h.chat_stored(2).is_empty(),
        "a repeated report sends nothing"
    );
    let out = h.chat_stored(3);
    assert_eq!(Harness::chats_to(&out, 2), [(3, "c".to_string())]);
}

#[test]
fn failed_chat_gives_its_sender_the_code_and_burns_its_number() {
    let mut h = Harness::new(5);
    h.join(1, "Ann");
    h.join(2, "Bo");
    h.chat(1, "lost");
    h.chat(2, "kept");
    let out = h.chat_failed(1);
    assert_eq!(
        Harness::error_code(&out, 1),
        Some(ErrorCode::StorageUnavailable)
    );
    assert!(Harness::chats_to(&out, 1).is_empty());
    assert!(
        Harness::sent_to(&out, 2).is_empty(),
        "Bo hears nothing of it"
    );
    let out = h.chat_stored(2);
    assert_eq!(Harness::chats_to(&out, 1), [(2, "kept".to_string())]);
    let next = Harness::to_store(&h.chat(1, "again"));
    assert_eq!(next[0].seq, 3, "seq 1 is never handed out again");
    // A joiner's history holds committed messages only.
    let out = h.join(3, "Cy");
    match &Harness::sent_to(&out, 3)[..] {
        [ServerMsg::Joined { chat, .. }] => {
            let got: Vec<_> = chat.iter().map(|m| (m.seq, m.text.as_str())).collect();
            assert_eq!(got, [(2, "kept")]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_joiner_gets_a_pending_message_once_it_is_stored() {
    let mut h = Harness::new(5);
    h.join(1, "Ann");
    h.chat(1, "early");
    let out = h.join(2, "Bo");
    assert!(
        matches!(&Harness::sent_to(&out, 2)[..], [ServerMsg::Joined { chat, .. }] if chat.is_empty())
    );
    let out = h.chat_stored(1);
    assert_eq!(Harness::chats_to(&out, 2), [(1, "early".to_string())]);
}

#[test]
fn a_sender_who_left_is_not_told_and_the_rest_still_get_stored_chat() {
    let mut h = Harness::new(5);
    h.join(1, "Ann");
    h.join(2, "Bo");
    h.chat(1, "one");
    h.chat(1, "two");
    h.room.handle_leave(h.now, 1, LeaveReason::Disconnected);
    h.drain();
    assert_eq!(
        h.room.pending_chat(),
        2,
        "leaving does not drop a pending write"
    );
    assert!(h.chat_failed(1).is_empty());
    let out = h.chat_stored(2);
    assert_eq!(Harness::chats_to(&out, 2), [(2, "two".to_string())]);
    assert!(Harness::sent_to(&out, 1).is_empty());
}

#[test]
fn chat_limits_have_codes() {
    let mut h = Harness::new(5);
    h.join(1, "Ann");
    let out = h.chat(1, &"é".repeat(MAX_CHAT_CHARS));
    assert_eq!(
        (Harness::error_code(&out, 1), Harness::to_store(&out).len()),
        (None, 1),
        "the limit counts characters, not bytes"
    );
    let out = h.chat(1, &"a".repeat(MAX_CHAT_CHARS + 1));
    assert_eq!(Harness::error_code(&out, 1), Some(ErrorCode::ChatTooLong));
    let out = h.chat(1, " \n ");
    assert_eq!(Harness::error_code(&out, 1), Some(ErrorCode::ChatEmpty));
    assert!(Harness::to_store(&out).is_empty());
}

#[test]
fn chat_rate_limit_recovers_with_time() {
    let mut h = Harness::new(5);
    h.join(1, "Ann");
    for i in 0..5 {
        assert_eq!(Harness::error_code(&h.chat(1, &format!("m{i}")), 1), None);
    }
    assert_eq!(
        Harness::error_code(&h.chat(1, "one too many"), 1),
        Some(ErrorCode::RateLimited)
    );
    h.advance(CHAT_WINDOW);
    assert_eq!(Harness::error_code(&h.chat(1, "later"), 1), None);
}

#[test]
fn late_joiner_gets_last_200_messages_and_seq_continues() {
    let history: Vec<ChatMessage> = (1..=250)
        .map(|seq| ChatMessage {
            seq,
            from: "p9".into(),
            name: "Old".into(),
            text: format!("m{seq}"),
            ts: seq,
        })
        .collect();
    let mut h = Harness::with_history(5, history);
    let out = h.join(1, "Ann");
    match &Harness::sent_to(&out, 1)[..] {
        [ServerMsg::Joined { chat, .. }] => {
            assert_eq!(chat.len(), CHAT_HISTORY_LEN);
            assert_eq!((chat[0].seq, chat[199].seq), (51, 250));
        }
        other => panic!("{other:?}"),
    }
    let out = h.chat(1, "new");
    assert_eq!(Harness::to_store(&out)[0].seq, 251);
    h.chat_stored(251);
    let out = h.join(2, "Bo");
    match &Harness::sent_to(&out, 2)[..] {
        [ServerMsg::Joined { chat, .. }] => {
            assert_eq!(chat.len(), CHAT_HISTORY_LEN);
            assert_eq!((chat[0].seq, chat[199].seq), (52, 251));
        }
        other => panic!("{other:?}"),
    }
}
