//! Apply order: namespaces first, then CRDs (so the kinds they define resolve), then
//! Helm's install order by kind; unknown kinds (custom resources) last. Objects of one
//! tier do not depend on each other, so a tier is applied concurrently; pruning walks
//! the tiers in reverse.

/// The tier of a kind: lower tiers are applied first.
pub fn tier(kind: &str) -> usize {
    match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        // Helm's order (shared with the chart engine); its Namespace and CRD ranks are
        // never reached here.
        other => convoy_common::install_order::rank(other)
            .map_or(convoy_common::INSTALL_ORDER.len() + 2, |i| i + 2),
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

    #[test]
    fn every_kind_helm_orders_is_ordered_here_as_helm_orders_it() {
        // Before the order was shared, the agent's copy lacked PriorityClass and the
        // webhook configurations, which were then applied last, as unknown kinds.
        assert!(tier("PriorityClass") < tier("Deployment"));
        assert!(tier("ValidatingWebhookConfiguration") < tier("Widget"));
        let helm: Vec<&str> = convoy_common::INSTALL_ORDER
            .iter()
            .copied()
            .filter(|k| !matches!(*k, "Namespace" | "CustomResourceDefinition"))
            .collect();
        assert!(helm.windows(2).all(|w| tier(w[0]) < tier(w[1])), "{helm:?}");
    }
}
