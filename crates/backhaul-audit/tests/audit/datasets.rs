//! `dataset.available`, `dataset.sha256`, `dataset.format` and `dataset.nodes`.

use crate::fixture::*;

#[test]
fn a_changed_byte_fails_the_sha256_check() {
    let mut f = Fixture::new();
    let Ok(bytes) = &mut f.datasets.get_mut(&1).unwrap().bytes else {
        panic!()
    };
    // The dataset still decodes: one digit of the session count changes.
    let at = bytes
        .windows(13)
        .position(|w| w == b"\"sessions\":10")
        .unwrap()
        + 12;
    bytes[at] = b'1';
    let r = f.run();
    let evidence = failed(&r, "epoch-1/dataset.sha256");
    assert!(evidence.contains("dataset_hash"), "{evidence}");
    passed(&r, "epoch-0/dataset.sha256");
    passed(&r, "epoch-1/dataset.format");
}

#[test]
fn a_re_encoded_dataset_fails_sha256_and_is_not_canonical() {
    let mut f = Fixture::new();
    let pretty = serde_json::to_vec_pretty(&f.decoded[&0]).unwrap();
    f.datasets.get_mut(&0).unwrap().bytes = Ok(pretty.clone());
    let r = f.run();
    failed(&r, "epoch-0/dataset.sha256");
    // Committed as such, it still is not the canonical encoding.
    f.set_bytes(0, pretty);
    let r = f.run();
    passed(&r, "epoch-0/dataset.sha256");
    let evidence = failed(&r, "epoch-0/dataset.format");
    assert!(evidence.contains("canonical"), "{evidence}");
}

#[test]
fn malformed_bytes_fail_the_format_check() {
    let mut f = Fixture::new();
    f.set_bytes(1, b"{\"version\":1,".to_vec());
    let r = f.run();
    passed(&r, "epoch-1/dataset.sha256");
    let evidence = failed(&r, "epoch-1/dataset.format");
    assert!(evidence.contains("does not decode"), "{evidence}");
    // Without epoch 1's dataset the claims against it cannot be checked.
    failed(&r, "claims.within_cumulative");
}

#[test]
fn a_stale_dataset_served_for_the_next_epoch_fails() {
    let mut f = Fixture::new();
    let stale = f.datasets[&0].clone();
    f.datasets.insert(1, stale);
    let r = f.run();
    failed(&r, "epoch-1/dataset.sha256");
    let evidence = failed(&r, "epoch-1/dataset.format");
    assert!(evidence.contains("epoch is 0, expected 1"), "{evidence}");
}

#[test]
fn a_missing_dataset_fails_availability_and_contiguity() {
    let mut f = Fixture::new();
    f.datasets.get_mut(&1).unwrap().bytes = Err("404 not found".into());
    let r = f.run();
    let evidence = failed(&r, "epoch-1/dataset.available");
    assert!(evidence.contains("404"), "{evidence}");
    failed(&r, "epochs.contiguous");
    f.datasets.remove(&0);
    failed(&f.run(), "epoch-0/dataset.available");
}

#[test]
fn node_bytes_that_do_not_add_up_fail_the_nodes_check() {
    let mut f = Fixture::new();
    f.edit(1, |d| d.nodes[0].bytes += 1);
    let evidence = failed(&f.run(), "epoch-1/dataset.nodes");
    assert!(evidence.contains("bytes"), "{evidence}");
}
