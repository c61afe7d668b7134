//! The [`Kv`] contract and the fencing on a real etcd (Debian's `etcd-server`).

use std::time::Duration;

use convoy_tests::etcd::Etcd;

use super::*;
use crate::store::{Batch, Table};

fn settings(etcd: &Etcd, prefix: &str) -> EtcdSettings {
    let mut s = EtcdSettings::new(vec![etcd.client_url().to_string()]);
    s.prefix = prefix.into();
    s
}

fn put(b: &mut Batch, table: Table, key: &str, v: u64) {
    b.put(table, key, &v);
}

fn keys(kv: &EtcdStore, table: Table, prefix: &str) -> Vec<String> {
    kv.scan(table, prefix)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_contract_on_etcd() {
    let etcd = Etcd::start().await.unwrap();
    let kv = EtcdStore::open(settings(&etcd, "/t1")).unwrap();
    let mut b = Batch::default();
    for k in ["r/b", "r/a", "r/c", "rx", "s/a"] {
        put(&mut b, Table::Revisions, k, 1);
    }
    put(&mut b, Table::Meta, "r/a", 9);
    kv.commit(b).unwrap();
    // Key order, prefix bounds, tables apart.
    assert_eq!(keys(&kv, Table::Revisions, "r/"), ["r/a", "r/b", "r/c"]);
    assert_eq!(keys(&kv, Table::Revisions, "").len(), 5);
    assert_eq!(keys(&kv, Table::Meta, ""), ["r/a"]);
    assert_eq!(kv.get(Table::Meta, "r/a").unwrap(), Some(b"9".to_vec()));
    assert_eq!(kv.get(Table::Meta, "r/b").unwrap(), None);
    // Deletes, and a delete then a put of one key in a batch (the put wins).
    let mut b = Batch::default();
    b.delete(Table::Revisions, "r/b");
    b.delete(Table::Revisions, "r/c");
    put(&mut b, Table::Revisions, "r/c", 2);
    kv.commit(b).unwrap();
    assert_eq!(keys(&kv, Table::Revisions, "r/"), ["r/a", "r/c"]);
    assert_eq!(kv.get(Table::Revisions, "r/c").unwrap(), Some(b"2".to_vec()));
    // Another prefix sees none of it.
    let other = EtcdStore::open(settings(&etcd, "/t2")).unwrap();
    assert!(keys(&other, Table::Revisions, "").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_page_through_many_keys() {
    let etcd = Etcd::start().await.unwrap();
    let kv = EtcdStore::open(settings(&etcd, "/convoy")).unwrap();
    for chunk in 0..10u64 {
        let mut b = Batch::default();
        for i in 0..120u64 {
            put(&mut b, Table::Audit, &format!("{:06}", chunk * 120 + i), i);
        }
        kv.commit(b).unwrap();
    }
    let all = keys(&kv, Table::Audit, "");
    assert_eq!(all.len(), 1200);
    assert!(all.windows(2).all(|w| w[0] < w[1]));
}

/// etcd refuses a transaction of more writes than its `--max-txn-ops`: a change larger
/// than that lands whole, as several transactions within the limit, the release
/// records last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_over_max_txn_ops_lands_whole() {
    let etcd = Etcd::start_with(&["--max-txn-ops=16"]).await.unwrap();
    let mut s = settings(&etcd, "/convoy");
    // What etcd itself refuses: one transaction over its limit.
    let mut unsplit = s.clone();
    unsplit.max_txn_ops = 1000;
    let kv = EtcdStore::open(unsplit).unwrap();
    let mut b = Batch::default();
    for i in 0..17u64 {
        put(&mut b, Table::Audit, &format!("{i:04}"), i);
    }
    let err = kv.commit(b).unwrap_err().to_string();
    assert!(err.contains("too many operations in txn request"), "{err}");
    assert!(keys(&kv, Table::Audit, "").is_empty(), "etcd wrote none of it");

    s.max_txn_ops = 16;
    let kv = EtcdStore::open(s).unwrap();
    assert_eq!(kv.max_batch_writes(), Some(16));
    let mut b = Batch::default();
    for i in 0..150u64 {
        put(&mut b, Table::Audit, &format!("{i:04}"), i);
    }
    put(&mut b, Table::Releases, "web.ns1", 7);
    kv.commit(b).unwrap();
    assert_eq!(keys(&kv, Table::Audit, "").len(), 150);
    assert_eq!(kv.get(Table::Releases, "web.ns1").unwrap(), Some(b"7".to_vec()));
}

#[test]
fn release_records_are_written_last() {
    let mut b = Batch::default();
    put(&mut b, Table::Releases, "a", 1);
    put(&mut b, Table::Operations, "a/1", 1);
    put(&mut b, Table::Revisions, "a/1", 1);
    put(&mut b, Table::OperationContexts, "a/1/east", 1);
    b.delete(Table::Audit, "x");
    let tables: Vec<Table> = in_txn_order(b).into_iter().map(|((t, _), _)| t).collect();
    assert_eq!(
        tables,
        [
            Table::Revisions,
            Table::OperationContexts,
            Table::Operations,
            Table::Audit,
            Table::Releases
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_cannot_write() {
    let etcd = Etcd::start().await.unwrap();
    let s = settings(&etcd, "/convoy");
    let ttl = Duration::from_secs(2);
    let a = Candidate::new(&s, "a".into(), ttl).unwrap();
    let b = Candidate::new(&s, "b".into(), ttl).unwrap();
    let Campaign::Won(lead_a) = a.campaign().await.unwrap() else {
        panic!("the first candidate leads")
    };
    assert!(matches!(b.campaign().await.unwrap(), Campaign::Standby(n) if n == "a"));
    let store_a = EtcdStore::fenced(s.clone(), &lead_a).unwrap();
    let mut batch = Batch::default();
    put(&mut batch, Table::Meta, "seq", 1);
    store_a.commit(batch).unwrap();
    let mut lost = lead_a.lost();
    assert!(lost.borrow().is_none());

    // A stops renewing (as if paused); its lease expires and B takes over.
    drop(lead_a);
    let lead_b = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Campaign::Won(l) = b.campaign().await.unwrap() {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("b leads once a's lease expired");
    let mut batch = Batch::default();
    put(&mut batch, Table::Meta, "seq", 2);
    put(&mut batch, Table::Meta, "other", 2);
    let err = store_a.commit(batch).unwrap_err();
    assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
    assert!(
        lost.borrow_and_update()
            .as_deref()
            .is_some_and(|m| m.contains("leadership lost"))
    );
    let store_b = EtcdStore::fenced(s.clone(), &lead_b).unwrap();
    // The failed transaction wrote nothing.
    assert_eq!(store_b.get(Table::Meta, "seq").unwrap(), Some(b"1".to_vec()));
    assert_eq!(store_b.get(Table::Meta, "other").unwrap(), None);
    let mut batch = Batch::default();
    put(&mut batch, Table::Meta, "seq", 3);
    store_b.commit(batch).unwrap();

    // Resigning hands over at once.
    lead_b.resign().await;
    assert!(matches!(a.campaign().await.unwrap(), Campaign::Won(_)));
}

#[test]
fn a_batch_merges_to_one_write_per_key() {
    let mut b = Batch::default();
    b.delete(Table::Meta, "a");
    put(&mut b, Table::Meta, "a", 1);
    put(&mut b, Table::Meta, "b", 1);
    put(&mut b, Table::Meta, "b", 2);
    b.delete(Table::Audit, "b");
    let merged: Vec<_> = merge(b).into_iter().collect();
    assert_eq!(
        merged,
        vec![
            ((Table::Audit, "b".to_string()), Write::Delete),
            ((Table::Meta, "a".to_string()), Write::Put(b"1".to_vec())),
            ((Table::Meta, "b".to_string()), Write::Put(b"2".to_vec())),
        ]
    );
}

fn secure_settings(etcd: &Etcd, prefix: &str) -> EtcdSettings {
    let access = etcd.access().expect("a secured etcd");
    let mut s = settings(etcd, prefix);
    s.tls = Some(EtcdTls {
        ca_pem: std::fs::read(&access.ca_file).unwrap(),
        identity: Some((
            std::fs::read(&access.cert_file).unwrap(),
            std::fs::read(&access.key_file).unwrap(),
        )),
        server_name: None,
    });
    s.credentials = Some(EtcdCredentials {
        username: access.username.clone(),
        password: access.password.clone(),
    });
    s
}

/// Production's etcd: TLS only, client certificates required, authentication on, and
/// convoy's etcd user allowed under its prefix only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_election_on_an_etcd_with_tls_and_authentication() {
    let etcd = Etcd::start_secure("/convoy").await.unwrap();
    assert!(etcd.client_url().starts_with("https://"));
    let s = secure_settings(&etcd, "/convoy");

    // The store contract and a fenced leader, all through TLS + the password.
    let candidate = Candidate::new(&s, "a".into(), Duration::from_secs(5)).unwrap();
    let Campaign::Won(lead) = candidate.campaign().await.unwrap() else {
        panic!("the only candidate leads")
    };
    let kv = EtcdStore::fenced(s.clone(), &lead).unwrap();
    let mut b = Batch::default();
    put(&mut b, Table::Revisions, "web/1", 1);
    put(&mut b, Table::Releases, "web", 1);
    kv.commit(b).unwrap();
    assert_eq!(keys(&kv, Table::Revisions, ""), ["web/1"]);
    assert_eq!(kv.get(Table::Releases, "web").unwrap(), Some(b"1".to_vec()));
    lead.resign().await;

    // Outside the role's prefix: refused by etcd, and the error says what to grant.
    let other = EtcdStore::open(secure_settings(&etcd, "/elsewhere")).unwrap();
    let err = other.get(Table::Meta, "x").unwrap_err().to_string();
    eprintln!("outside the prefix: {err}");
    assert!(err.contains("permission denied") && err.contains("role"), "{err}");

    // A wrong password: refused, named, and the password is in no error.
    let mut wrong = s.clone();
    wrong.credentials = Some(EtcdCredentials {
        username: "convoy".into(),
        password: "canary-wrong-password".into(),
    });
    let err = EtcdStore::open(wrong)
        .unwrap()
        .get(Table::Meta, "x")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("authentication failed") && err.contains("store.etcd_password_file"),
        "{err}"
    );
    eprintln!("wrong password: {err}");
    assert!(!err.contains("canary-wrong-password"), "{err}");

    // No password: the client certificate's CN is no etcd user.
    let mut anonymous = s.clone();
    anonymous.credentials = None;
    let err = EtcdStore::open(anonymous)
        .unwrap()
        .get(Table::Meta, "x")
        .unwrap_err()
        .to_string();
    eprintln!("no password: {err}");
    assert!(err.contains(etcd.client_url()), "{err}");

    // Without a client certificate etcd refuses the TLS handshake.
    let mut no_cert = s.clone();
    if let Some(t) = no_cert.tls.as_mut() {
        t.identity = None;
    }
    let err = EtcdStore::open(no_cert)
        .unwrap()
        .get(Table::Meta, "x")
        .unwrap_err()
        .to_string();
    eprintln!("no client certificate: {err}");
    assert!(err.contains("store.etcd_tls.cert_file"), "{err}");

    // A CA that did not sign etcd's certificate: refused, pointing at etcd_tls.ca_file.
    let mut wrong_ca = s.clone();
    if let Some(t) = wrong_ca.tls.as_mut() {
        t.ca_pem = convoy_tests::certs::TestCa::new("other")
            .unwrap()
            .cert_pem()
            .into_bytes();
    }
    let err = EtcdStore::open(wrong_ca)
        .unwrap()
        .get(Table::Meta, "x")
        .unwrap_err()
        .to_string();
    eprintln!("wrong CA: {err}");
    assert!(err.contains("store.etcd_tls"), "{err}");
}

/// A standby watches the leader key: when the leader resigns it leads at once, not
/// at its next periodic check (here a whole 20 s TTL away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_leads_as_soon_as_the_leader_key_is_gone() {
    let etcd = Etcd::start().await.unwrap();
    let s = settings(&etcd, "/convoy");
    let ttl = Duration::from_secs(20);
    let a = Candidate::new(&s, "a".into(), ttl).unwrap();
    let Campaign::Won(lead_a) = a.campaign().await.unwrap() else {
        panic!("the first candidate leads")
    };
    let (tx, mut rx) = tokio::sync::watch::channel(String::new());
    let standby = tokio::spawn(async move {
        let b = Candidate::new(&s, "b".into(), ttl).unwrap();
        b.lead(&tx, Duration::from_millis(200)).await
    });
    // The standby has seen a lead, and is now waiting on its watch.
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|l| l == "a"))
        .await
        .expect("the standby names the leader")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resigned = std::time::Instant::now();
    lead_a.resign().await;
    let lead_b = tokio::time::timeout(Duration::from_secs(10), standby)
        .await
        .expect("the standby leads well before its periodic check")
        .unwrap();
    eprintln!("standby led {:?} after the resignation", resigned.elapsed());
    assert!(lead_b.lost().borrow().is_none());
}
