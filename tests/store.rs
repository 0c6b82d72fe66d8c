//! The durable queue store: schema, queue semantics, crash recovery, and every bad state
//! file a user can point `--state` at.

use std::path::{Path, PathBuf};
use std::time::Duration;

use breakwater::store::{
    BATCH, Binding, Counts, DEFERRED, InsertReport, ItemUpdate, NewItem, Outcome, RunnerLock,
    SCHEMA_VERSION, SharedStore, State, Store, StoreError,
};
use tempfile::TempDir;

fn state_file() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.state");
    (dir, path)
}

fn open() -> (TempDir, Store) {
    let (dir, path) = state_file();
    (dir, Store::open(path).unwrap())
}

fn line(ordinal: u64) -> NewItem {
    NewItem::new(
        format!("req-{ordinal}"),
        ordinal,
        format!(r#"{{"n":{ordinal}}}"#),
    )
}

fn names(error: &StoreError, path: &Path) -> bool {
    error.to_string().contains(&path.display().to_string())
}

fn user_version(path: &Path) -> u32 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap()
}

#[test]
fn a_fresh_file_is_migrated_and_reopens_with_its_items() {
    let (_dir, path) = state_file();
    let store = Store::open(&path).unwrap();
    store.enqueue(DEFERRED, "t1", "{}", None).unwrap();
    drop(store);
    assert_eq!(SCHEMA_VERSION, user_version(&path));

    let store = Store::open(&path).unwrap();
    assert_eq!(SCHEMA_VERSION, user_version(&path));
    assert_eq!(
        State::Pending,
        store.get(DEFERRED, "t1").unwrap().unwrap().state
    );
}

#[test]
fn the_file_is_in_wal_mode() {
    let (_dir, path) = state_file();
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!("wal", mode);
}

#[test]
fn insert_many_is_idempotent() {
    let (_dir, mut store) = open();
    let first = store.insert_many(BATCH, (0..3).map(line)).unwrap();
    assert_eq!(
        InsertReport {
            inserted: 3,
            existing: 0
        },
        first
    );
    let claimed = store.claim(BATCH, 0, 1).unwrap();

    let again = store.insert_many(BATCH, (0..4).map(line)).unwrap();
    assert_eq!(
        InsertReport {
            inserted: 1,
            existing: 3
        },
        again
    );
    let item = store.get(BATCH, &claimed[0].key).unwrap().unwrap();
    assert_eq!((State::InFlight, 1), (item.state, item.attempts));
    assert_eq!(4, store.counts(BATCH, 0).unwrap().total());
}

#[test]
fn insert_many_rejects_a_key_stored_at_another_ordinal() {
    let (_dir, mut store) = open();
    store.insert_many(BATCH, (0..2).map(line)).unwrap();
    let duplicate = NewItem::new("req-0", 7, "{}");
    let error = store.insert_many(BATCH, [duplicate]).unwrap_err();
    assert!(
        matches!(&error, StoreError::Conflict { key, ordinal: 7, .. } if key == "req-0"),
        "{error:?}"
    );
    let taken = NewItem::new("other", 1, "{}");
    let error = store.insert_many(BATCH, [taken]).unwrap_err();
    assert!(
        error.to_string().contains("\"req-1\" at ordinal 1"),
        "{error}"
    );
}

#[test]
fn queues_are_separate() {
    let (_dir, mut store) = open();
    store
        .insert_many(BATCH, [NewItem::new("k", 0, "{}")])
        .unwrap();
    store.enqueue(DEFERRED, "k", "{}", None).unwrap();
    assert_eq!(1, store.claim(BATCH, 0, 10).unwrap().len());
    assert_eq!(1, store.counts(DEFERRED, 0).unwrap().pending);
}

#[test]
fn claim_takes_due_items_lowest_ordinal_first() {
    let (_dir, mut store) = open();
    let items = [
        line(3),
        line(1).with_not_before(5_000),
        line(2),
        line(0).with_options(r#"{"priority":"low"}"#),
    ];
    store.insert_many(BATCH, items).unwrap();

    let first = store.claim(BATCH, 1_000, 2).unwrap();
    let ordinals: Vec<u64> = first.iter().map(|item| item.ordinal).collect();
    assert_eq!(vec![0, 2], ordinals);
    assert!(
        first
            .iter()
            .all(|item| item.state == State::InFlight && item.attempts == 1)
    );
    assert_eq!(Some(r#"{"priority":"low"}"#), first[0].options.as_deref());

    let second = store.claim(BATCH, 1_000, 10).unwrap();
    assert_eq!(
        vec![3],
        second.iter().map(|i| i.ordinal).collect::<Vec<_>>()
    );
    assert!(store.claim(BATCH, 4_999, 10).unwrap().is_empty());
    assert_eq!("req-1", store.claim(BATCH, 5_000, 10).unwrap()[0].key);
}

#[test]
fn an_unclaimed_item_is_pending_again_with_its_claim_not_counted() {
    let (_dir, store) = open();
    store.enqueue(DEFERRED, "t", "{}", None).unwrap();
    assert_eq!(1, store.claim(DEFERRED, 0, 1).unwrap()[0].attempts);
    store.unclaim(DEFERRED, "t").unwrap();
    let item = store.get(DEFERRED, "t").unwrap().unwrap();
    assert_eq!((State::Pending, 0), (item.state, item.attempts));
    assert_eq!(1, store.claim(DEFERRED, 0, 1).unwrap()[0].attempts);
    // Only an item in flight can be given back.
    store.unclaim(DEFERRED, "t").unwrap();
    assert!(store.unclaim(DEFERRED, "t").is_err());
}

#[test]
fn release_holds_an_item_back_until_not_before_and_keeps_its_error() {
    let (_dir, store) = open();
    store.enqueue(DEFERRED, "t", "{}", None).unwrap();
    store.claim(DEFERRED, 0, 1).unwrap();
    store
        .release(DEFERRED, "t", 2_000, Some(r#"{"type":"overloaded_error"}"#))
        .unwrap();

    assert!(store.claim(DEFERRED, 1_999, 1).unwrap().is_empty());
    let retried = store.claim(DEFERRED, 2_000, 1).unwrap().remove(0);
    assert_eq!(2, retried.attempts);
    store.release(DEFERRED, "t", 3_000, None).unwrap();
    let item = store.get(DEFERRED, "t").unwrap().unwrap();
    assert_eq!(
        Some(r#"{"type":"overloaded_error"}"#),
        item.last_error.as_deref()
    );
    assert_eq!((State::Pending, 3_000), (item.state, item.not_before));
}

#[test]
fn in_flight_items_are_recovered_after_reopening_without_closing() {
    let (_dir, path) = state_file();
    let mut store = Store::open(&path).unwrap();
    store.insert_many(BATCH, (0..5).map(line)).unwrap();
    store.claim(BATCH, 0, 2).unwrap();
    // No close, no checkpoint: the connection is leaked, as if the process had died.
    std::mem::forget(store);

    let store = Store::open(&path).unwrap();
    assert_eq!(2, store.counts(BATCH, 0).unwrap().in_flight);
    assert_eq!(2, store.recover(BATCH).unwrap());
    let counts = store.counts(BATCH, 0).unwrap();
    assert_eq!((5, 0), (counts.pending, counts.in_flight));
    assert_eq!(1, store.get(BATCH, "req-0").unwrap().unwrap().attempts);
    assert_eq!(0, store.recover(BATCH).unwrap());
}

const CRASH_CHILD: &str = "BREAKWATER_STORE_CRASH_CHILD";

/// The child half of the crash test: claims 3 items, then aborts in the middle of inserting
/// a second chunk of 5 000, with that chunk's transaction open.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CRASH_CHILD) else {
        return;
    };
    let mut store = Store::open(path).unwrap();
    store.insert_many(BATCH, (0..10).map(line)).unwrap();
    store.claim(BATCH, 0, 3).unwrap();
    let doomed = (10..20_000).map(|ordinal| {
        if ordinal == 10 + 5_000 + 100 {
            std::process::abort();
        }
        line(ordinal)
    });
    store.insert_many(BATCH, doomed).unwrap();
}

#[test]
fn a_process_killed_mid_transaction_loses_only_its_open_chunk() {
    let (_dir, path) = state_file();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD, &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child should have aborted");

    let store = Store::open(&path).unwrap();
    let counts = store.counts(BATCH, 0).unwrap();
    // 10 + the first chunk of 5 000 were committed; the second chunk's 100 were not.
    assert_eq!((7 + 5_000, 3), (counts.pending, counts.in_flight));
    assert_eq!(3, store.recover(BATCH).unwrap());
    assert_eq!(None, store.get(BATCH, "req-5010").unwrap());
}

#[test]
fn a_stored_result_is_final() {
    let (_dir, store) = open();
    store.enqueue(BATCH, "a", "{}", None).unwrap();
    store.claim(BATCH, 0, 1).unwrap();
    store.succeed(BATCH, "a", r#"{"id":"msg_1"}"#).unwrap();

    for error in [
        store.succeed(BATCH, "a", r#"{"id":"msg_2"}"#).unwrap_err(),
        store.fail(BATCH, "a", "{}").unwrap_err(),
        store.release(BATCH, "a", 0, None).unwrap_err(),
    ] {
        assert!(
            matches!(
                error,
                StoreError::NotInFlight {
                    state: State::Succeeded,
                    ..
                }
            ),
            "{error:?}"
        );
    }
    assert!(store.claim(BATCH, 0, 1).unwrap().is_empty());
    assert_eq!(0, store.recover(BATCH).unwrap());
    let item = store.get(BATCH, "a").unwrap().unwrap();
    assert_eq!(
        Some(Outcome::Succeeded(r#"{"id":"msg_1"}"#.into())),
        item.outcome()
    );
}

#[test]
fn settling_an_item_not_in_flight_says_why() {
    let (_dir, store) = open();
    store.enqueue(BATCH, "p", "{}", None).unwrap();
    let pending = store.succeed(BATCH, "p", "{}").unwrap_err();
    assert!(matches!(
        pending,
        StoreError::NotInFlight {
            state: State::Pending,
            ..
        }
    ));
    let unknown = store.fail(BATCH, "nope", "{}").unwrap_err();
    assert!(
        matches!(unknown, StoreError::NoSuchItem { .. }),
        "{unknown:?}"
    );
}

#[test]
fn fail_stores_the_error_as_final() {
    let (_dir, store) = open();
    store.enqueue(BATCH, "e", "{}", None).unwrap();
    store.claim(BATCH, 0, 1).unwrap();
    store
        .fail(BATCH, "e", r#"{"type":"invalid_request_error"}"#)
        .unwrap();
    let item = store.get(BATCH, "e").unwrap().unwrap();
    assert_eq!(State::Errored, item.state);
    assert_eq!(item.result, item.last_error);
    assert!(store.release(BATCH, "e", 0, None).is_err());
}

#[test]
fn enqueue_appends_and_rejects_a_duplicate_key() {
    let (_dir, store) = open();
    assert_eq!(0, store.enqueue(DEFERRED, "t1", "{}", None).unwrap());
    assert_eq!(1, store.enqueue(DEFERRED, "t2", "{}", Some("{}")).unwrap());
    let error = store.enqueue(DEFERRED, "t1", "{}", None).unwrap_err();
    assert!(
        matches!(error, StoreError::DuplicateKey { .. }),
        "{error:?}"
    );
}

#[test]
fn counts_sum_up_each_state_as_of_now() {
    let (_dir, mut store) = open();
    let items = (0..6).map(|n| line(n).with_not_before(if n == 5 { 9_000 } else { 0 }));
    store.insert_many(BATCH, items).unwrap();
    let claimed = store.claim(BATCH, 1_000, 3).unwrap();
    store.succeed(BATCH, &claimed[0].key, "{}").unwrap();
    store.fail(BATCH, &claimed[1].key, "{}").unwrap();

    let now = 5_000;
    let counts = store.counts(BATCH, now).unwrap();
    let expected = Counts {
        pending: 3,
        due: 2,
        claimed: 0,
        in_flight: 1,
        succeeded: 1,
        errored: 1,
        oldest_pending_since: counts.oldest_pending_since,
        next_due_at: Some(0),
        now,
    };
    assert_eq!(expected, counts);
    let inserted_by_now = |since| since <= breakwater::store::now_ms();
    assert!(counts.oldest_pending_since.is_some_and(inserted_by_now));
    assert_eq!(Some(Duration::ZERO), counts.next_due_in());
    assert_eq!(
        Counts {
            now: 0,
            ..Counts::default()
        },
        store.counts(DEFERRED, 0).unwrap()
    );
}

#[test]
fn items_claimed_ahead_count_as_claimed_until_their_requests_are_sent() {
    let (_dir, mut store) = open();
    store.insert_many(BATCH, (0..6).map(line)).unwrap();
    let ahead = store.claim_ahead(BATCH, 0, 4).unwrap();
    assert!(ahead.iter().all(|item| item.state == State::InFlight));
    let counts = store.counts(BATCH, 0).unwrap();
    assert_eq!(
        (2, 4, 0),
        (counts.pending, counts.claimed, counts.in_flight)
    );
    assert_eq!((6, 6), (counts.total(), counts.unfinished()));

    store
        .update_many(
            BATCH,
            &[ItemUpdate::Sent {
                key: ahead[0].key.clone(),
            }],
        )
        .unwrap();
    store.mark_sent(BATCH, &ahead[1].key).unwrap();
    let counts = store.counts(BATCH, 0).unwrap();
    assert_eq!(
        (2, 2, 2),
        (counts.pending, counts.claimed, counts.in_flight)
    );

    // Settled or put back, sent or not, an item leaves both counts.
    store.succeed(BATCH, &ahead[0].key, "{}").unwrap();
    store.release(BATCH, &ahead[2].key, 0, None).unwrap();
    let counts = store.counts(BATCH, 0).unwrap();
    assert_eq!(
        (3, 1, 1),
        (counts.pending, counts.claimed, counts.in_flight)
    );
    // Claimed again ahead, an item sent on an earlier try waits as claimed.
    store.release(BATCH, &ahead[1].key, 0, None).unwrap();
    let again = store.claim_ahead(BATCH, 0, 10).unwrap();
    assert_eq!(4, again.len());
    let counts = store.counts(BATCH, 0).unwrap();
    assert_eq!(
        (0, 5, 0),
        (counts.pending, counts.claimed, counts.in_flight)
    );
    // Marking one that is not in flight says why.
    let error = store.mark_sent(BATCH, &ahead[0].key).unwrap_err();
    assert!(matches!(error, StoreError::NotInFlight { .. }), "{error:?}");
}

#[test]
fn claim_sends_at_once_and_recovery_puts_claimed_items_back() {
    let (_dir, path) = state_file();
    let mut store = Store::open(&path).unwrap();
    store.insert_many(BATCH, (0..5).map(line)).unwrap();
    assert_eq!(2, store.claim(BATCH, 0, 2).unwrap().len());
    assert_eq!(2, store.claim_ahead(BATCH, 0, 2).unwrap().len());
    let counts = store.counts(BATCH, 0).unwrap();
    assert_eq!(
        (1, 2, 2),
        (counts.pending, counts.claimed, counts.in_flight)
    );
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(4, store.recover(BATCH).unwrap());
    let counts = store.counts(BATCH, 0).unwrap();
    assert_eq!(
        (5, 0, 0),
        (counts.pending, counts.claimed, counts.in_flight)
    );
}

/// Makes `path` a version-1 file: the schema before `sent_at`, as an older build left it.
fn downgrade_to_version_1(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("ALTER TABLE items DROP COLUMN sent_at; PRAGMA user_version = 1;")
        .unwrap();
}

#[test]
fn a_version_1_file_reads_its_in_flight_items_as_sent_and_upgrades_when_opened_to_write() {
    let (_dir, path) = state_file();
    let mut store = Store::open(&path).unwrap();
    store.insert_many(BATCH, (0..4).map(line)).unwrap();
    store.claim_ahead(BATCH, 0, 3).unwrap();
    drop(store);
    downgrade_to_version_1(&path);

    // Read-only, as `batch status` beside an older runner: version 1 cannot tell claimed
    // from sent, so all three count as in flight, as that version showed them.
    let reader = Store::open_read_only(&path).unwrap();
    let counts = reader.counts(BATCH, 0).unwrap();
    assert_eq!(
        (1, 0, 3),
        (counts.pending, counts.claimed, counts.in_flight)
    );
    assert_eq!(1, user_version(&path), "a read-only open changes nothing");
    drop(reader);

    let store = Store::open(&path).unwrap();
    assert_eq!(SCHEMA_VERSION, user_version(&path));
    let counts = store.counts(BATCH, 0).unwrap();
    assert_eq!(
        (1, 0, 3),
        (counts.pending, counts.claimed, counts.in_flight)
    );
    store.claim_ahead(BATCH, 0, 1).unwrap();
    assert_eq!(1, store.counts(BATCH, 0).unwrap().claimed);
}

#[test]
fn finished_pages_final_items_in_ordinal_order() {
    let (_dir, mut store) = open();
    store.insert_many(BATCH, (0..25).rev().map(line)).unwrap();
    for item in store.claim(BATCH, 0, 20).unwrap() {
        match item.ordinal % 3 {
            0 => store.succeed(BATCH, &item.key, "{\"ok\":true}").unwrap(),
            1 => store.fail(BATCH, &item.key, "{\"ok\":false}").unwrap(),
            _ => {} // left in flight
        }
    }

    let (mut seen, mut after) = (Vec::new(), None);
    loop {
        let page = store.finished(BATCH, after, 4).unwrap();
        assert!(page.len() <= 4);
        let Some(last) = page.last() else { break };
        after = Some(last.ordinal);
        seen.extend(page);
    }
    let ordinals: Vec<u64> = seen.iter().map(|f| f.ordinal).collect();
    let expected: Vec<u64> = (0..20).filter(|n| n % 3 != 2).collect();
    assert_eq!(expected, ordinals);
    assert!(
        seen.iter()
            .all(|f| f.outcome.is_success() == (f.ordinal % 3 == 0))
    );
    assert_eq!("req-0", seen[0].key);
    assert_eq!("{\"ok\":false}", seen[1].outcome.body());
}

#[test]
fn meta_round_trips() {
    let (_dir, store) = open();
    assert_eq!(None, store.meta("model").unwrap());
    store.set_meta("model", "a").unwrap();
    store.set_meta("model", "b").unwrap();
    assert_eq!(Some("b".to_owned()), store.meta("model").unwrap());
}

#[test]
fn bind_input_is_new_then_resumed_then_refuses_a_different_input() {
    let (_dir, path) = state_file();
    let mut store = Store::open(&path).unwrap();
    assert_eq!(
        Binding::New,
        store.bind_input("sha256:aa", "in.jsonl").unwrap()
    );
    drop(store);
    let mut store = Store::open(&path).unwrap();
    assert_eq!(
        Binding::Resumed,
        store.bind_input("sha256:aa", "in.jsonl").unwrap()
    );

    let error = store.bind_input("sha256:bb", "other.jsonl").unwrap_err();
    assert!(
        matches!(error, StoreError::DifferentInput { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(names(&error, &path), "{message}");
    assert!(
        message.contains("in.jsonl") && message.contains("other.jsonl"),
        "{message}"
    );
    assert!(message.contains("another --state file"), "{message}");
}

#[test]
fn a_second_runner_lock_is_in_use_until_the_first_is_dropped() {
    let (_dir, path) = state_file();
    let lock = RunnerLock::acquire(&path).unwrap();
    let error = RunnerLock::acquire(&path).unwrap_err();
    assert!(matches!(error, StoreError::InUse { .. }), "{error:?}");
    assert!(names(&error, &path), "{error}");
    drop(lock);
    drop(RunnerLock::acquire(&path).unwrap());

    let store = Store::open_exclusive(&path).unwrap();
    let error = Store::open_exclusive(&path).unwrap_err();
    assert!(matches!(error, StoreError::InUse { .. }), "{error:?}");
    drop(store);
    Store::open_exclusive(&path).unwrap();
}

#[test]
fn garbage_is_not_a_database_and_the_error_names_the_file() {
    let (_dir, path) = state_file();
    std::fs::write(&path, vec![0xA5; 8192]).unwrap();
    let error = Store::open(&path).unwrap_err();
    assert!(
        matches!(error, StoreError::NotADatabase { .. }),
        "{error:?}"
    );
    assert!(names(&error, &path), "{error}");
    assert!(error.to_string().contains("--state"), "{error}");
    let error = Store::open_read_only(&path).unwrap_err();
    assert!(
        matches!(error, StoreError::NotADatabase { .. }),
        "{error:?}"
    );
}

#[test]
fn a_damaged_page_is_reported_corrupt() {
    let (_dir, path) = state_file();
    let mut store = Store::open(&path).unwrap();
    store.insert_many(BATCH, (0..2_000).map(line)).unwrap();
    drop(store);
    // Page 2 onwards holds the tables: overwrite it, keeping the header on page 1 intact.
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 16_384);
    bytes[4096..16_384].fill(0xA5);
    std::fs::write(&path, bytes).unwrap();

    let error = Store::open(&path)
        .and_then(|store| store.counts(BATCH, 0).map(drop))
        .unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
    assert!(names(&error, &path), "{error}");
}

#[test]
fn a_newer_schema_is_refused_naming_both_versions() {
    let (_dir, path) = state_file();
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);

    for error in [
        Store::open(&path).unwrap_err(),
        Store::open_read_only(&path).unwrap_err(),
    ] {
        assert!(
            matches!(error, StoreError::NewerSchema { found, supported, .. }
                if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
            "{error:?}"
        );
        assert!(names(&error, &path), "{error}");
    }
}

#[test]
fn another_programs_sqlite_file_is_refused() {
    let (_dir, path) = state_file();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE notes (body TEXT)")
        .unwrap();
    drop(conn);
    let error = Store::open(&path).unwrap_err();
    assert!(
        matches!(error, StoreError::ForeignDatabase { .. }),
        "{error:?}"
    );
    assert!(names(&error, &path), "{error}");
}

#[test]
fn read_only_open_of_a_missing_file_names_it_and_creates_nothing() {
    let (_dir, path) = state_file();
    let error = Store::open_read_only(&path).unwrap_err();
    assert!(matches!(error, StoreError::Missing { .. }), "{error:?}");
    assert!(names(&error, &path), "{error}");
    assert!(!path.exists());
}

#[test]
fn opening_in_a_missing_directory_cannot_open() {
    let (dir, _) = state_file();
    let path = dir.path().join("no-such-dir").join("run.state");
    let error = Store::open(&path).unwrap_err();
    assert!(matches!(error, StoreError::CannotOpen { .. }), "{error:?}");
    assert!(names(&error, &path), "{error}");
}

#[test]
fn a_read_only_store_reads_beside_the_writer_and_refuses_writes() {
    let (_dir, path) = state_file();
    let writer = Store::open(&path).unwrap();
    writer.enqueue(DEFERRED, "t", "{}", None).unwrap();
    let reader = Store::open_read_only(&path).unwrap();
    assert_eq!(1, reader.counts(DEFERRED, 0).unwrap().pending);

    writer.enqueue(DEFERRED, "u", "{}", None).unwrap();
    assert_eq!(2, reader.counts(DEFERRED, 0).unwrap().pending);
    let error = reader.enqueue(DEFERRED, "v", "{}", None).unwrap_err();
    assert!(matches!(error, StoreError::ReadOnly { .. }), "{error:?}");
    assert!(names(&error, &path), "{error}");
}

#[test]
fn a_read_only_store_opens_after_the_writer_has_exited() {
    let (_dir, path) = state_file();
    let writer = Store::open(&path).unwrap();
    writer.enqueue(DEFERRED, "t", "{}", None).unwrap();
    drop(writer);
    let reader = Store::open_read_only(&path).unwrap();
    assert_eq!(1, reader.counts(DEFERRED, 0).unwrap().pending);
}

#[test]
fn a_write_blocked_by_another_writer_is_locked() {
    let (_dir, path) = state_file();
    let store = Store::open(&path).unwrap();
    store.set_busy_timeout(Duration::from_millis(10)).unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();

    let error = store.enqueue(DEFERRED, "t", "{}", None).unwrap_err();
    assert!(matches!(error, StoreError::Locked { .. }), "{error:?}");
    assert!(error.is_transient());
    assert!(names(&error, &path), "{error}");
    other.execute_batch("ROLLBACK").unwrap();
    store.enqueue(DEFERRED, "t", "{}", None).unwrap();
}

/// 100 000 lines, as a large batch: inserted in chunks, then inserted again on resume.
#[test]
fn inserting_100k_items_in_chunks_completes() {
    let (_dir, mut store) = open();
    let payload = r#"{"model":"claude-sonnet-5-5","max_tokens":256,"messages":[]}"#;
    let items = (0..100_000).map(|n| NewItem::new(format!("line-{n}"), n, payload));
    let report = store.insert_many(BATCH, items).unwrap();
    assert_eq!((100_000, 0), (report.inserted, report.existing));
    // Resuming inserts the whole input again: every line is found already there.
    let again = (0..100_000).map(|n| NewItem::new(format!("line-{n}"), n, payload));
    let report = store.insert_many(BATCH, again).unwrap();
    assert_eq!((0, 100_000), (report.inserted, report.existing));
    assert_eq!(100_000, store.counts(BATCH, 0).unwrap().due);
    let first = store.claim(BATCH, 0, 3).unwrap();
    assert_eq!(
        vec![0, 1, 2],
        first.iter().map(|i| i.ordinal).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_store_serves_concurrent_tasks() {
    let (_dir, store) = open();
    let shared = SharedStore::new(store);
    let enqueues = (0..20).map(|n| {
        let shared = shared.clone();
        tokio::spawn(async move { shared.enqueue(DEFERRED, format!("t{n}"), "{}", None).await })
    });
    for task in enqueues.collect::<Vec<_>>() {
        task.await.unwrap().unwrap();
    }
    let claimed = shared.claim(DEFERRED, u64::MAX >> 1, 20).await.unwrap();
    assert_eq!(20, claimed.len());
    for item in &claimed {
        shared
            .succeed(DEFERRED, item.key.clone(), "{}")
            .await
            .unwrap();
    }
    let counts = shared.counts(DEFERRED, 0).await.unwrap();
    assert_eq!((20, 0), (counts.succeeded, counts.unfinished()));
    let error = shared.succeed(DEFERRED, "t0", "{}").await.unwrap_err();
    assert!(matches!(error, StoreError::NotInFlight { .. }));
}

#[test]
fn update_many_stores_a_group_in_one_transaction_all_or_none() {
    let (_dir, store) = open();
    for key in ["a", "b", "c", "d"] {
        store.enqueue(BATCH, key, "{}", None).unwrap();
    }
    store.claim(BATCH, 0, 4).unwrap();
    let group = [
        ItemUpdate::Succeed {
            key: "a".into(),
            result: r#"{"ok":1}"#.into(),
        },
        ItemUpdate::Fail {
            key: "b".into(),
            error: r#"{"bad":1}"#.into(),
        },
        ItemUpdate::Release {
            key: "c".into(),
            not_before: 0,
            last_error: Some("overloaded".into()),
        },
    ];
    store.update_many(BATCH, &group).unwrap();
    let state = |key| store.get(BATCH, key).unwrap().unwrap().state;
    assert_eq!(
        [state("a"), state("b"), state("c"), state("d")],
        [
            State::Succeeded,
            State::Errored,
            State::Pending,
            State::InFlight
        ]
    );

    // "a" is final: a group holding it fails whole, and "d" stays in flight.
    let group = [
        ItemUpdate::Succeed {
            key: "d".into(),
            result: "{}".into(),
        },
        ItemUpdate::Succeed {
            key: "a".into(),
            result: r#"{"ok":2}"#.into(),
        },
    ];
    let error = store.update_many(BATCH, &group).unwrap_err();
    assert!(matches!(error, StoreError::NotInFlight { .. }), "{error:?}");
    assert_eq!(state("d"), State::InFlight, "rolled back with the rest");
    assert_eq!(
        store.get(BATCH, "a").unwrap().unwrap().outcome(),
        Some(Outcome::Succeeded(r#"{"ok":1}"#.into()))
    );
}
