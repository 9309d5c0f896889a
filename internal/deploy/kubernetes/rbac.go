package kubernetes

import (
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// DeployerAccount is the ServiceAccount RBAC binds the deployer's rights
// to (in the environment's namespace).
const DeployerAccount = "modelship-deployer"

// RBAC is the least privilege a deploy, rollback, history and prune need,
// as an administrator applies it once: a ServiceAccount (DeployerAccount) in
// the namespace, a Role with only the objects modelship manages there
// (Deployments, their ReplicaSets and pods read-only with logs, GET
// through the pods' API-server proxy for a canary's measurements and
// engine metrics and POST for a rollout's route (a sticky split, a
// shadow), the Service and its proxy for verify, records in ConfigMaps,
// Secrets for image pulls and serving credentials, the lock Lease,
// EndpointSlices and Events read-only), and its RoleBinding. Only when pods
// use GPUs (o.GPUs > 0: the plan counts free GPUs) a ClusterRole reads
// nodes and pods of every namespace, with its ClusterRoleBinding. Without
// that ClusterRole a deploy works as long as GPU accounting is off.
func RBAC(o Options) []runtime.Object {
	ns := o.Namespace
	if ns == "" {
		ns = "default"
	}
	name := DeployerAccount
	meta := func(n string, namespaced bool) metav1.ObjectMeta {
		m := metav1.ObjectMeta{Name: n, Labels: map[string]string{LabelName: "modelship", LabelManagedBy: "modelship"}}
		if namespaced {
			m.Namespace = ns
		}
		return m
	}
	rw := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	ro := []string{"get", "list", "watch"}
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}}
	objs := []runtime.Object{
		&corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: meta(name, true)},
		&rbacv1.Role{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"}, ObjectMeta: meta(name, true),
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: append(rw, "deletecollection")},
				{APIGroups: []string{"apps"}, Resources: []string{"replicasets"}, Verbs: ro},
				{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: ro},
				{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
				{APIGroups: []string{""}, Resources: []string{"pods/proxy"}, Verbs: []string{"get", "create"}},
				{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: rw},
				{APIGroups: []string{""}, Resources: []string{"services/proxy"}, Verbs: []string{"get", "create"}},
				{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: append(rw, "deletecollection")},
				{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "create", "update", "patch", "delete"}},
				{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: ro},
				{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: append(rw, "deletecollection")},
				{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: ro},
			}},
		&rbacv1.RoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"}, ObjectMeta: meta(name, true),
			Subjects: subject, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}},
	}
	if o.GPUs > 0 {
		cluster := name + "-" + ns
		objs = append(objs,
			&rbacv1.ClusterRole{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"}, ObjectMeta: meta(cluster, false),
				Rules: []rbacv1.PolicyRule{
					{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list"}},
					{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}},
				}},
			&rbacv1.ClusterRoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"}, ObjectMeta: meta(cluster, false),
				Subjects: subject, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cluster}})
	}
	return objs
}
