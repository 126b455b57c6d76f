//! A cluster of three `warren` processes on loopback ports, formed from their config files: definition changes
//! made on one node reach every node, a node that comes back catches up, a node cut off from the majority refuses
//! changes, and the inter-node listener refuses requests without the secret's signature.

mod common;
mod tls_support;

use common::cluster::{
    config_text, eventually, free_port_list, free_ports, start_three, Node, SECRET,
};
use reqwest::blocking::Client;
use reqwest::StatusCode;

#[test]
fn vhosts_made_on_any_node_reach_every_node_and_a_minority_refuses_changes() {
    let ports = free_ports();
    let mut nodes = start_three(&ports);

    eventually(30, "a leader elected", || {
        nodes[0].get("/cluster-status").1["leader"].is_string()
    });
    let (_, status) = nodes[1].get("/cluster-status");
    assert_eq!(status["clustered"], true, "{status}");
    assert_eq!(status["node"], "n2", "{status}");
    assert_eq!(
        status["members"].as_array().map(Vec::len),
        Some(3),
        "{status}"
    );

    // Made on n2: on n2 when the call returns, on the others as soon as they apply it.
    let (code, body) = nodes[1].api(reqwest::Method::PUT, "/vhosts/replicated", None);
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(nodes[1].get("/vhosts/replicated").0, StatusCode::OK);
    for node in [&nodes[0], &nodes[2]] {
        eventually(10, "the vhost on every node", || {
            node.get("/vhosts/replicated").0 == StatusCode::OK
        });
    }
    // The creator's permissions came with it: guest can use the vhost on another node.
    eventually(10, "the creator's permissions on n3", || {
        nodes[2].get("/permissions/replicated/guest").1["configure"] == ".*"
    });
    let (code, _) = nodes[2].api(reqwest::Method::PUT, "/queues/replicated/q", None);
    assert_eq!(code, StatusCode::CREATED);

    // Permissions set on n3 reach n1.
    let (code, body) = nodes[2].api(
        reqwest::Method::PUT,
        "/permissions/replicated/guest",
        Some(serde_json::json!({"configure": "^c", "write": "^w", "read": "^r"})),
    );
    assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
    eventually(10, "the permissions on n1", || {
        nodes[0].get("/permissions/replicated/guest").1["configure"] == "^c"
    });

    // A user made on n1 logs in on n3 with its password (the hash travelled, not the password).
    let (code, body) = nodes[0].api(
        reqwest::Method::PUT,
        "/users/alice",
        Some(serde_json::json!({"password": "alice-pw", "tags": "administrator"})),
    );
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let port = nodes[2].process().management_port();
    eventually(10, "alice on n3", || {
        Client::new()
            .get(format!("http://127.0.0.1:{port}/api/whoami"))
            .basic_auth("alice", Some("alice-pw"))
            .send()
            .is_ok_and(|r| r.status() == StatusCode::OK)
    });

    // Policies: set on n3, seen on n1; a bad one refused before it reaches the log.
    let (code, body) = nodes[2].api(
        reqwest::Method::PUT,
        "/policies/replicated/short",
        Some(serde_json::json!({"pattern": ".*", "definition": {"max-length": 5}})),
    );
    assert_eq!(code, StatusCode::CREATED, "{body}");
    for node in [&nodes[0], &nodes[1]] {
        eventually(10, "the policy and alice on n1 and n2", || {
            node.get("/policies/replicated/short").1["definition"]["max-length"] == 5
                && node.get("/users/alice").0 == StatusCode::OK
        });
    }
    let (code, body) = nodes[1].api(
        reqwest::Method::PUT,
        "/policies/replicated/bad",
        Some(serde_json::json!({"pattern": ".*", "definition": {"max-length": "five"}})),
    );
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    let (code, _) = nodes[1].api(reqwest::Method::DELETE, "/policies/replicated/short", None);
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _) = nodes[1].api(reqwest::Method::DELETE, "/users/alice", None);
    assert_eq!(code, StatusCode::NO_CONTENT);
    for node in [&nodes[0], &nodes[2]] {
        eventually(10, "the policy and user gone everywhere", || {
            node.get("/policies/replicated/short").0 == StatusCode::NOT_FOUND
                && node.get("/users/alice").0 == StatusCode::NOT_FOUND
        });
    }

    // One node down: the other two are a majority and go on (after an election if it led).
    nodes[0].kill9();
    let (code, body) = nodes[2].api(reqwest::Method::PUT, "/vhosts/second", None);
    assert_eq!(code, StatusCode::CREATED, "{body}");
    eventually(10, "the second vhost on n2", || {
        nodes[1].get("/vhosts/second").0 == StatusCode::OK
    });

    // A node that comes back catches up on what it missed.
    nodes[0].restart();
    eventually(30, "n1 caught up", || {
        nodes[0].get("/vhosts/second").0 == StatusCode::OK
    });
    let (code, _) = nodes[0].api(reqwest::Method::DELETE, "/vhosts/second", None);
    assert_eq!(code, StatusCode::NO_CONTENT);
    for node in [&nodes[1], &nodes[2]] {
        eventually(10, "the deletion on every node", || {
            node.get("/vhosts/second").0 == StatusCode::NOT_FOUND
        });
    }

    // Two down: the last node cannot reach a majority and refuses, rather than diverging.
    nodes[0].kill9();
    nodes[1].kill9();
    let (code, body) = nodes[2].api(reqwest::Method::PUT, "/vhosts/alone", None);
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("majority")),
        "{body}"
    );
}

#[test]
fn the_inter_node_listener_refuses_requests_without_the_secret() {
    let ports = free_ports();
    let node = Node::start_with_config("lone", &config_text(0, &ports));
    // Started: its management API answers.
    assert_eq!(node.get("/overview").0, StatusCode::OK);
    let client = Client::new();
    for signature in [None, Some("00"), Some("not hex")] {
        let mut request = client
            .post(format!("http://127.0.0.1:{}/cluster/vote", ports[0]))
            .body("{}");
        if let Some(signature) = signature {
            request = request.header("x-warren-cluster-signature", signature);
        }
        let response = request.send().expect("answered");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{signature:?}");
    }
}

#[test]
fn a_node_joins_at_run_time_and_a_stopped_member_is_forgotten() {
    let ports = free_port_list(4);
    let mut nodes = start_three(&[ports[0], ports[1], ports[2]]);
    eventually(30, "a leader elected", || {
        nodes[0].get("/cluster-status").1["leader"].is_string()
    });
    let text = format!(
        "[server]\ncluster_name = \"n4\"\n\n[cluster]\nname = \"n4\"\nlisten = \"127.0.0.1:{}\"\n\
         peers = [\"n1@127.0.0.1:{}\", \"n2@127.0.0.1:{}\", \"n3@127.0.0.1:{}\"]\nsecret = \"{SECRET}\"\njoin = true\n",
        ports[3], ports[0], ports[1], ports[2]
    );
    let mut joiner = Node::start_with_config("n4", &text);
    let members = |node: &Node| {
        node.get("/cluster-status").1["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|n| n["name"].as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    eventually(30, "n4 a member on n1", || {
        members(&nodes[0]).contains(&"n4".to_owned())
    });
    // The new member takes changes and has what was made before it joined.
    let (code, _) = nodes[0].api(reqwest::Method::PUT, "/vhosts/before-join", None);
    assert_eq!(code, StatusCode::CREATED);
    eventually(30, "n4 caught up", || {
        joiner.get("/vhosts/before-join").0 == StatusCode::OK
    });
    let (code, body) = joiner.api(reqwest::Method::PUT, "/vhosts/from-n4", None);
    assert_eq!(code, StatusCode::CREATED, "{body}");
    eventually(10, "n4's vhost on n2", || {
        nodes[1].get("/vhosts/from-n4").0 == StatusCode::OK
    });

    // Stopped, then forgotten through another member: the cluster is three again.
    joiner.kill9();
    let (code, body) = nodes[1].api(reqwest::Method::DELETE, "/cluster-nodes/n4", None);
    assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
    eventually(10, "n4 gone from n3's view", || {
        !members(&nodes[2]).contains(&"n4".to_owned())
    });
    assert_eq!(members(&nodes[2]).len(), 3);
    let (code, body) = nodes[1].api(reqwest::Method::DELETE, "/cluster-nodes/n4", None);
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    let (code, body) = nodes[1].api(reqwest::Method::DELETE, "/cluster-nodes/n2", None);
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    // With two of the three up, changes still commit.
    nodes[0].kill9();
    let (code, body) = nodes[2].api(reqwest::Method::PUT, "/vhosts/after-forget", None);
    assert_eq!(code, StatusCode::CREATED, "{body}");
}

#[test]
fn with_inter_node_tls_the_cluster_forms_and_the_listener_refuses_plain_and_certificateless_clients(
) {
    let pki = tls_support::Pki::new("cluster");
    let ports = free_ports();
    let nodes: Vec<Node> = (0..3)
        .map(|i| {
            let name = format!("n{}", i + 1);
            let (cert, key) = pki.write(&name, &pki.node(&name));
            let text = format!(
                "{}tls_certfile = \"{}\"\ntls_keyfile = \"{}\"\ntls_cacertfile = \"{}\"\n",
                config_text(i, &ports),
                cert.display(),
                key.display(),
                pki.ca_file().display()
            );
            Node::start_with_config(&name, &text)
        })
        .collect();
    eventually(30, "a leader elected over TLS", || {
        nodes[0].get("/cluster-status").1["leader"].is_string()
    });
    let (status, _) = nodes[0].api(
        reqwest::Method::PUT,
        "/vhosts/over-tls",
        Some(serde_json::json!({})),
    );
    assert_eq!(status, StatusCode::CREATED);
    eventually(30, "the vhost on n3", || {
        nodes[2].get("/vhosts/over-tls").0 == StatusCode::OK
    });

    // Plain HTTP gets no answer: the listener speaks TLS only.
    let plain = Client::new()
        .post(format!("http://127.0.0.1:{}/cluster/vote", ports[0]))
        .body("{}")
        .send();
    assert!(plain.is_err(), "{plain:?}");

    // TLS without a client certificate: the handshake is refused, nothing is served.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let answer = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", ports[0])).await?;
        let name =
            rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
        let mut tls = pki.rustls_client().connect(name, tcp).await?;
        tls.write_all(b"POST /cluster/vote HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
            .await?;
        let mut buf = Vec::new();
        tls.read_to_end(&mut buf).await?;
        Ok::<Vec<u8>, std::io::Error>(buf)
    });
    assert!(
        answer.as_ref().map_or(true, |bytes| bytes.is_empty()),
        "answered without a client certificate: {answer:?}"
    );
}
