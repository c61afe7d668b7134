//! Apply order: namespaces first, then CRDs (so the kinds they define resolve), then
//! Helm's install order by kind; unknown kinds (custom resources) last. Objects of one
//! tier do not depend on each other, so a tier is applied concurrently; pruning walks
//! the tiers in reverse.

/// Helm's `InstallOrder` (pkg/releaseutil/kind_sorter.go), minus the two kinds we put
/// in front of everything else.
const HELM_INSTALL_ORDER: &[&str] = &[
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

/// The tier of a kind: lower tiers are applied first.
pub fn tier(kind: &str) -> usize {
    match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        other => HELM_INSTALL_ORDER
            .iter()
            .position(|k| *k == other)
            .map_or(HELM_INSTALL_ORDER.len() + 2, |i| i + 2),
    }
}

/// Groups items into tiers in apply order, keeping the input order inside a tier.
pub fn tiers<T>(items: Vec<T>, kind: impl Fn(&T) -> &str) -> Vec<Vec<T>> {
    let mut keyed: Vec<(usize, T)> = items.into_iter().map(|i| (tier(kind(&i)), i)).collect();
    keyed.sort_by_key(|(t, _)| *t);
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut current = None;
    for (t, item) in keyed {
        if current != Some(t) {
            out.push(Vec::new());
            current = Some(t);
        }
        if let Some(last) = out.last_mut() {
            last.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_and_crds_come_first_then_helm_order_then_unknown() {
        let kinds = vec![
            "Widget",
            "Deployment",
            "Service",
            "CustomResourceDefinition",
            "ConfigMap",
            "Namespace",
            "Job",
            "Deployment",
        ];
        let tiers = tiers(kinds, |k| k);
        assert_eq!(
            tiers,
            vec![
                vec!["Namespace"],
                vec!["CustomResourceDefinition"],
                vec!["ConfigMap"],
                vec!["Service"],
                vec!["Deployment", "Deployment"],
                vec!["Job"],
                vec!["Widget"],
            ]
        );
    }

    #[test]
    fn secrets_before_configmaps_before_workloads() {
        assert!(tier("Secret") < tier("ConfigMap"));
        assert!(tier("ConfigMap") < tier("Deployment"));
        assert!(tier("ServiceAccount") < tier("RoleBinding"));
        assert!(tier("Deployment") < tier("Widget"));
    }
}
