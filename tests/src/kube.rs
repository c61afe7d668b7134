//! A real Kubernetes control plane: etcd + kube-apiserver + kube-controller-manager,
//! on ephemeral loopback ports, with a test CA, an admin token and RBAC on. Several
//! can run side by side (each has its own etcd and apiserver): that is how the
//! multi-cluster tests get their clusters.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

use crate::certs::{TestCa, key_pair_pem};
use crate::etcd::Etcd;
use crate::podsim::PodSimulator;
use crate::process::{Service, WorkDir};
use crate::{ServiceError, free_port};

/// The controllers the control plane runs: enough for real Deployment, ReplicaSet,
/// StatefulSet, DaemonSet and Job status, Service Endpoints, namespace deletion,
/// service accounts (and their token secrets) and garbage collection.
pub const CONTROLLERS: &str = "deployment,replicaset,statefulset,daemonset,job,endpoint,namespace,serviceaccount,serviceaccount-token,garbagecollector";

/// How long each part took to start.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartupTimes {
    pub etcd: Duration,
    pub apiserver: Duration,
    pub controller_manager: Duration,
}

/// A running control plane. Everything stops on drop.
#[derive(Debug)]
pub struct ControlPlane {
    name: String,
    // Field order is drop order: controllers first, then the apiserver, then etcd.
    controller_manager: Service,
    apiserver: Service,
    _etcd: Etcd,
    server: String,
    ca_pem: String,
    admin_token: String,
    kubeconfig_path: PathBuf,
    /// How long each part took to become ready.
    pub startup: StartupTimes,
    dir: PathBuf,
    _workdir: WorkDir,
}

impl ControlPlane {
    /// Starts a control plane named `name` (used in logs and the kubeconfig).
    pub async fn start(name: &str) -> Result<Self, ServiceError> {
        let apiserver_bin = crate::tools::kube_apiserver()?;
        let kcm_bin = crate::tools::kube_controller_manager()?;
        let workdir = WorkDir::new(&format!("kube-{name}"))?;
        let dir = workdir.path().to_path_buf();
        let setup =
            |what: &str, e: &dyn std::fmt::Display| ServiceError::setup(&format!("{name}: {what}"), e);

        // Certificates and credentials.
        let ca = TestCa::new(name).map_err(|e| setup("test CA", &e))?;
        let serving = ca
            .server_cert(
                "kube-apiserver",
                &["kubernetes", "kubernetes.default", "kubernetes.default.svc"],
            )
            .map_err(|e| setup("serving certificate", &e))?;
        let (sa_key, sa_pub) = key_pair_pem().map_err(|e| setup("service-account key", &e))?;
        let admin_token = format!("admin-{:032x}", rand::random::<u128>());
        let write = |file: &str, contents: &str| -> Result<PathBuf, ServiceError> {
            let p = dir.join(file);
            std::fs::write(&p, contents).map_err(|e| setup(&format!("writing {file}"), &e))?;
            Ok(p)
        };
        let ca_file = write("ca.crt", &ca.cert_pem())?;
        let cert_file = write("apiserver.crt", &serving.cert_pem)?;
        let key_file = write("apiserver.key", &serving.key_pem)?;
        let sa_file = write("sa.key", &sa_key)?;
        let sa_pub_file = write("sa.pub", &sa_pub)?;
        let tokens = write(
            "tokens.csv",
            &format!("{admin_token},admin,admin-uid,\"system:masters\"\n"),
        )?;

        // etcd, in the same directory.
        let etcd_dir = WorkDir::new(&format!("kube-{name}-etcd"))?;
        let etcd = Etcd::start_in(etcd_dir, &format!("{name}-etcd"), &[]).await?;

        // kube-apiserver.
        let port = free_port();
        let server = format!("https://127.0.0.1:{port}");
        let mut cmd = Command::new(apiserver_bin);
        cmd.arg(format!("--etcd-servers={}", etcd.client_url()))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={port}"))
            .arg("--insecure-port=0")
            .arg(format!("--cert-dir={}", dir.join("certs").display()))
            .arg(format!("--tls-cert-file={}", cert_file.display()))
            .arg(format!("--tls-private-key-file={}", key_file.display()))
            .arg(format!("--client-ca-file={}", ca_file.display()))
            .arg(format!("--token-auth-file={}", tokens.display()))
            .arg("--authorization-mode=RBAC")
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg(format!("--service-account-key-file={}", sa_pub_file.display()))
            .arg(format!(
                "--service-account-signing-key-file={}",
                sa_file.display()
            ))
            .arg("--service-cluster-ip-range=10.96.0.0/24")
            .arg("--allow-privileged=true")
            .arg("--enable-priority-and-fairness=false")
            .arg("--profiling=false")
            .arg("--v=0");
        let mut apiserver = Service::spawn(
            &format!("{name}-kube-apiserver"),
            cmd,
            dir.join("kube-apiserver.log"),
        )?;

        let kubeconfig_yaml = kubeconfig(name, &server, &ca.cert_pem(), &admin_token);
        let kubeconfig_path = write("kubeconfig", &kubeconfig_yaml)?;
        let client = client_from_yaml(&kubeconfig_yaml)
            .await
            .map_err(|e| setup("kubeconfig", &e))?;

        let apiserver_ready = apiserver
            .wait_ready(Duration::from_secs(120), || {
                let client = client.clone();
                async move {
                    let req = http::Request::get("/readyz").body(Vec::new()).expect("request");
                    client.request_text(req).await.is_ok_and(|t| t.trim() == "ok")
                }
            })
            .await?;

        // kube-controller-manager.
        let mut cmd = Command::new(kcm_bin);
        cmd.arg(format!("--kubeconfig={}", kubeconfig_path.display()))
            .arg(format!("--controllers={CONTROLLERS}"))
            .arg("--leader-elect=false")
            .arg("--port=0")
            .arg("--secure-port=0")
            .arg(format!(
                "--service-account-private-key-file={}",
                sa_file.display()
            ))
            .arg(format!("--root-ca-file={}", ca_file.display()))
            .arg("--use-service-account-credentials=false")
            .arg("--concurrent-deployment-syncs=10")
            .arg("--concurrent-replicaset-syncs=10")
            .arg("--v=0");
        let mut controller_manager = Service::spawn(
            &format!("{name}-kube-controller-manager"),
            cmd,
            dir.join("kube-controller-manager.log"),
        )?;
        // Ready when the serviceaccount and token controllers have done their first work.
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
        let kcm_ready = controller_manager
            .wait_ready(Duration::from_secs(90), || {
                let sas = sas.clone();
                async move {
                    matches!(sas.get_opt("default").await, Ok(Some(sa)) if sa.secrets.as_ref().is_some_and(|s| !s.is_empty()))
                }
            })
            .await?;

        Ok(ControlPlane {
            name: name.to_string(),
            controller_manager,
            apiserver,
            startup: StartupTimes {
                etcd: etcd.startup,
                apiserver: apiserver_ready,
                controller_manager: kcm_ready,
            },
            _etcd: etcd,
            server,
            ca_pem: ca.cert_pem(),
            admin_token,
            kubeconfig_path,
            dir,
            _workdir: workdir,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `https://127.0.0.1:PORT`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The CA that signed the apiserver's serving certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A bearer token of a `system:masters` user.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// A kubeconfig file for the admin user.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The admin kubeconfig's contents.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig(&self.name, &self.server, &self.ca_pem, &self.admin_token)
    }

    /// A kubeconfig authenticating with `token` (a service account's, say).
    pub fn kubeconfig_for_token(&self, token: &str) -> String {
        kubeconfig(&self.name, &self.server, &self.ca_pem, token)
    }

    /// The directory holding the control plane's files and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// An admin client.
    pub async fn client(&self) -> Client {
        client_from_yaml(&self.kubeconfig_yaml())
            .await
            .expect("admin kubeconfig is valid")
    }

    /// Stops the controller manager (SIGKILL): workloads stop progressing.
    pub fn kill_controller_manager(&mut self) {
        self.controller_manager.kill();
    }

    /// The apiserver process id (to stop it in failure tests).
    pub fn apiserver_pid(&self) -> Option<u32> {
        self.apiserver.pid()
    }
}

fn kubeconfig(name: &str, server: &str, ca_pem: &str, token: &str) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n- name: {name}-user\n  user:\n    token: {token}\n\
         contexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}-user\n    namespace: default\n\
         current-context: {name}\n"
    )
}

/// A client for a kubeconfig's current context.
pub async fn client_from_yaml(yaml: &str) -> Result<Client, String> {
    let kc = Kubeconfig::from_yaml(yaml).map_err(|e| e.to_string())?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    Client::try_from(cfg).map_err(|e| e.to_string())
}

/// A control plane with a pod simulator standing in for its kubelets: workloads
/// created in it really roll out.
#[derive(Debug)]
pub struct TestCluster {
    pub pods: PodSimulator,
    pub control_plane: ControlPlane,
}

impl TestCluster {
    pub async fn start(name: &str) -> Result<Self, ServiceError> {
        let control_plane = ControlPlane::start(name).await?;
        let pods = PodSimulator::start(control_plane.client().await, &format!("{name}-node-0"))
            .await
            .map_err(|e| ServiceError::setup(&format!("{name}: pod simulator"), e))?;
        Ok(TestCluster { pods, control_plane })
    }

    pub async fn client(&self) -> Client {
        self.control_plane.client().await
    }
}
