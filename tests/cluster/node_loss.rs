//! One of three nodes killed for 20 s under steady load: instances that know every node fail
//! over (no 5xx outside the envelope, nothing acknowledged lost, no restart), and an instance
//! that knows only the lost node answers 503 in the envelope and recovers by itself.

use crate::helpers::{TestApp, tree};
use crate::kazoo::{Account, hex32, random_number};
use crate::{instance, node_urls, settled};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn cluster_dir() -> PathBuf {
    std::env::var_os("KPR_CLUSTER_DIR").map(PathBuf::from).expect("KPR_CLUSTER_DIR is set: run with scripts/test.sh")
}

/// Node 3's Erlang VM: killed (SIGKILL), and started again as start-cluster.sh starts it.
struct Node3 {
    dir: PathBuf,
    epmd_port: String,
}

impl Node3 {
    fn pid(&self) -> i32 {
        let pids = std::fs::read_to_string(self.dir.join("pids")).unwrap();
        pids.lines().nth(2).unwrap().trim().parse().unwrap()
    }

    fn find() -> Self {
        let dir = cluster_dir();
        let mut me = Node3 { dir, epmd_port: String::new() };
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", me.pid())).unwrap();
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let at = args.iter().position(|a| a == "-epmd_port").expect("the node runs with its epmd port");
        me.epmd_port = args[at + 1].clone();
        me
    }

    fn kill(&self) {
        let status = std::process::Command::new("kill").args(["-KILL", &self.pid().to_string()]).status().unwrap();
        assert!(status.success());
    }

    // the node outlives the test: stop.sh stops it with the rest of the cluster
    #[allow(clippy::zombie_processes)]
    fn relaunch(&self) {
        let node = self.dir.join("node3");
        let log = std::fs::OpenOptions::new().append(true).create(true).open(node.join("couchdb.log")).unwrap();
        let child = std::process::Command::new("setsid")
            .arg("./bin/couchdb")
            .current_dir(node.join("couchdb"))
            .env("HOME", &self.dir)
            .env("ERL_EPMD_PORT", &self.epmd_port)
            .env_remove("ERL_FLAGS")
            .env_remove("ERL_LIBS")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("node 3 starts again");
        // keep stop.sh's list right (it also stops whatever runs from the cluster's release)
        let pids = std::fs::read_to_string(self.dir.join("pids")).unwrap();
        let mut lines: Vec<String> = pids.lines().map(str::to_owned).collect();
        lines[2] = child.id().to_string();
        std::fs::write(self.dir.join("pids"), lines.join("\n") + "\n").unwrap();
    }
}

async fn node_answers(url: &str) -> bool {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    client.get(format!("{url}/_up")).send().await.is_ok_and(|r| r.status().is_success())
}

#[derive(Default)]
struct Tally {
    statuses: BTreeMap<u16, usize>,
    outside_envelope: Vec<String>,
    /// request id → the state it was acknowledged in, and acknowledged comments
    states: BTreeMap<String, &'static str>,
    comments: Vec<(String, String)>,
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    data: Option<Value>,
    tally: &Mutex<Tally>,
) -> Option<(u16, Value)> {
    let mut req = app.request(method, path, Some(token)).timeout(Duration::from_secs(15));
    if let Some(d) = data {
        req = req.json(&json!({ "data": d }));
    }
    let resp = req.send().await.ok();
    let mut t = tally.lock().unwrap();
    let Some(resp) = resp else {
        *t.statuses.entry(0).or_default() += 1;
        return None;
    };
    let status = resp.status().as_u16();
    drop(t);
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let mut t = tally.lock().unwrap();
    *t.statuses.entry(status).or_default() += 1;
    if status >= 500 && body["status"] != "error" {
        t.outside_envelope.push(format!("{status} {body}"));
    }
    Some((status, body))
}

/// Create, comment, submit, pend: over and over, until `until`.
async fn load(
    app: TestApp,
    account: Account,
    member: String,
    authority: String,
    tally: Arc<Mutex<Tally>>,
    until: Instant,
) {
    let base = format!("/v2/accounts/{}/port_requests", account.id);
    while Instant::now() < until {
        let data = json!({"name": "under load", "numbers": {random_number(): {}}});
        let Some((201, body)) = call(&app, Method::PUT, &base, &member, Some(data), &tally).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let id = body["data"]["id"].as_str().unwrap().to_owned();
        tally.lock().unwrap().states.insert(id.clone(), "unconfirmed");
        let text = format!("note {}", hex32());
        let comment =
            json!({"comments": [{"author": "load", "content": text, "timestamp": crate::kazoo::now_gregorian()}]});
        if let Some((200, _)) =
            call(&app, Method::PUT, &format!("{base}/{id}/comments"), &member, Some(comment), &tally).await
        {
            tally.lock().unwrap().comments.push((id.clone(), text));
        }
        for (state, token) in [("submitted", &member), ("pending", &authority)] {
            match call(&app, Method::PATCH, &format!("{base}/{id}/{state}"), token, None, &tally).await {
                Some((200, _)) => {
                    tally.lock().unwrap().states.insert(id.clone(), state);
                }
                _ => break,
            }
        }
    }
}

#[tokio::test]
async fn a_node_lost_under_load() {
    let _cluster = crate::alone().await;
    let nodes = node_urls();
    let node3 = Node3::find();
    let queue = hex32();
    // two instances that know every node, in different orders
    let a = instance(&nodes.join(","), &queue).await;
    let b = instance(&[nodes[1].clone(), nodes[2].clone(), nodes[0].clone()].join(","), &queue).await;
    // and one that knows only node 3
    let lonely = instance(&nodes[2], &hex32()).await;
    let t = tree(&a).await;
    let (member, authority) = (a.token(&t.customer), a.token(&t.reseller));
    let probe = crate::helpers::Ports::new(&lonely, &t.customer).create(&member, &[&random_number()]).await;
    let probe_path = format!("/v2/accounts/{}/port_requests/{}", t.customer.id, probe["id"].as_str().unwrap());

    let tally = Arc::new(Mutex::new(Tally::default()));
    let until = Instant::now() + Duration::from_secs(32);
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let app = if i % 2 == 0 {
                TestApp { address: a.address.clone(), http: reqwest::Client::new(), sys: a.sys }
            } else {
                TestApp { address: b.address.clone(), http: reqwest::Client::new(), sys: b.sys }
            };
            tokio::spawn(load(app, t.customer.clone(), member.clone(), authority.clone(), tally.clone(), until))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(4)).await;
    node3.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // the instance that knows only node 3 answers 503 in the envelope while it is away
    let (status, body) = crate::helpers::send(lonely.request(Method::GET, &probe_path, Some(&member))).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    tokio::time::sleep(Duration::from_secs(18)).await;
    node3.relaunch();
    let back = Instant::now() + Duration::from_secs(60);
    while !node_answers(&nodes[2]).await {
        assert!(Instant::now() < back, "node 3 did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for w in workers {
        w.await.unwrap();
    }
    // ...and recovers by itself
    let back = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = crate::helpers::send(lonely.request(Method::GET, &probe_path, Some(&member))).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < back, "the single-node instance did not recover: {status}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let tally = std::mem::take(&mut *tally.lock().unwrap());
    eprintln!("node loss: answers by status {:?}", tally.statuses);
    assert!(tally.outside_envelope.is_empty(), "5xx outside the envelope: {:?}", tally.outside_envelope);
    assert_eq!(tally.statuses.get(&0), None, "requests without an answer");
    assert!(tally.states.len() > 20, "the load went on: {:?}", tally.statuses);
    let chain = ["unconfirmed", "submitted", "pending"];
    for (id, acked) in &tally.states {
        let doc = settled(&a.sys.couch, "port_requests", id).await;
        let state = doc["pvt_port_state"].as_str().unwrap_or("missing");
        let (at, was) = (chain.iter().position(|c| *c == state), chain.iter().position(|c| c == acked).unwrap());
        assert!(at.is_some_and(|at| at >= was), "{id} was acknowledged {acked} but is {state}");
        assert!(doc.get("_conflicts").is_none(), "{id}: {doc}");
    }
    for (id, text) in &tally.comments {
        let doc = settled(&a.sys.couch, "port_requests", id).await;
        assert!(
            doc["comments"].as_array().unwrap().iter().any(|c| c["content"] == text.as_str()),
            "comment of {id} lost"
        );
    }
}
