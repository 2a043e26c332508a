//! The node directory: adverts of bound nodes, signed by their node key and current, are served
//! by key a page at a time, the latest per node; anything else is refused and not served.

use crate::common::*;
use backhaul_client::OracleClient;
use backhaul_protocol::advert::{Endpoint, NodeAdvert, ADVERT_LIFETIME_SECS};
use backhaul_protocol::api::{ItemResult, ItemStatus, RejectReason};

#[tokio::test]
async fn adverts_of_bound_nodes_are_served_by_key_and_nothing_else_is() {
    for db in databases().await {
        let o = TestOracle::start(chain(genesis()), &db).await;
        let d = deployment();
        let w = World::new(3, 0);
        // Two of the three nodes are bound.
        let bound = &w.bindings()[..2];
        let results = o.post("/v1/bindings", bound).await;
        assert!(
            results.iter().all(|r| r.status == ItemStatus::Accepted),
            "{results:?}"
        );
        let advert = |i: usize, endpoint: &str, at: i64| {
            NodeAdvert::new(pk(&w.nodes[i]), &Endpoint::parse(endpoint).unwrap(), at)
                .unwrap()
                .sign(&d, &w.nodes[i])
        };
        let t = now();
        let mut forged = advert(1, "n1.example:443", t);
        forged.advert.endpoint[0] = b'x';
        let stale = advert(1, "n1.example:443", t - ADVERT_LIFETIME_SECS - 1);
        let results = o
            .post(
                "/v1/adverts",
                &[
                    advert(0, "n0.example:443", t),
                    advert(1, "relay://relay.example:7000", t),
                    advert(2, "n2.example:443", t),
                    forged,
                    stale,
                ],
            )
            .await;
        assert_eq!(
            results,
            vec![
                ItemResult::ACCEPTED,
                ItemResult::ACCEPTED,
                ItemResult::rejected(RejectReason::UnknownBinding),
                ItemResult::rejected(RejectReason::BadSignature),
                ItemResult::rejected(RejectReason::OutOfRange),
            ],
            "{db:?}"
        );
        // A later advert replaces the node's earlier one; an earlier one changes nothing.
        let results = o
            .post(
                "/v1/adverts",
                &[
                    advert(0, "n0.example:8443", t + 1),
                    advert(1, "n1.example:1", t - 5),
                ],
            )
            .await;
        assert_eq!(results[0], ItemResult::ACCEPTED);
        assert_eq!(results[1].status, ItemStatus::Superseded);

        let client = OracleClient::new(&o.url).unwrap();
        let all = client.adverts(None, 1_000).await.unwrap();
        assert_eq!(all.len(), 2);
        let mut keys: Vec<[u8; 32]> = vec![pk(&w.nodes[0]), pk(&w.nodes[1])];
        keys.sort();
        for (entry, key) in all.iter().zip(&keys) {
            let signed = entry.signed().expect("decodes");
            assert_eq!(signed.advert.node, *key);
            signed.checks(&d)[0]
                .verify_strict()
                .expect("the node's signature");
        }
        let endpoints: Vec<&str> = all.iter().map(|e| e.endpoint.as_str()).collect();
        assert!(endpoints.contains(&"n0.example:8443"), "{endpoints:?}");
        assert!(
            endpoints.contains(&"relay://relay.example:7000"),
            "{endpoints:?}"
        );
        // Paging by key.
        let first = client.adverts(None, 1).await.unwrap();
        assert_eq!(first.len(), 1);
        let after = backhaul_protocol::dataset::key_from_b58(&first[0].node).unwrap();
        let rest = client.adverts(Some(&after), 10).await.unwrap();
        assert_eq!(rest, all[1..].to_vec());
        // Malformed requests get clear errors.
        let (status, body) = o
            .post_raw("/v1/adverts", vec![1, 2, 3], "application/octet-stream")
            .await;
        assert_eq!(status, 400, "{body}");
        let (status, _) = o.get("/v1/adverts?after=not-a-key").await;
        assert_eq!(status, 400);
    }
}
