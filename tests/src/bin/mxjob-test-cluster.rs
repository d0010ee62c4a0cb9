//! The test cluster of [`mxjob_tests::cluster`] as a program, for tools
//! outside the tests (`cargo xtask bench --kubernetes`): starts
//! kube-apiserver over etcd, prints one JSON line — `url`, `kubeconfig`,
//! `ca` (the CA's PEM file) and `token` (the administrator's) — and keeps
//! the cluster until its standard input closes.

use std::io::Read;

use mxjob_tests::cluster::Cluster;

fn main() {
    // One thread: the cluster's processes die with the thread that started them.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let cluster = runtime.block_on(Cluster::start());
    let ca = cluster.dir().join("ca.crt");
    println!(
        "{}",
        serde_json::json!({
            "url": cluster.url,
            "kubeconfig": cluster.kubeconfig,
            "ca": ca,
            "token": cluster.admin_token,
        })
    );
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(cluster);
}
