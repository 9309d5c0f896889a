#!/usr/bin/env bash
# Starts (up) or tears down (down) a real single-node Kubernetes v1.34.1
# cluster for the Kubernetes target's tests, offline, on this machine:
#
#   eval "$(.ci/deps/k8s-cluster.sh up)"    # exports KUBECONFIG
#   .ci/deps/k8s-cluster.sh down            # leaves the machine as it found it
#
# Components (binaries from .ci/deps/k8s-build.sh): etcd (Debian), API
# server, controller-manager, scheduler, containerd (Debian, private root,
# state and socket) + runc, CNI bridge (Debian plugins), kubelet (cgroupfs),
# kube-proxy (iptables), CoreDNS as a host process on the bridge gateway.
# Nothing is pulled from the internet: the sandbox image is our own pause
# binary, imported with `ctr -n k8s.io images import`; tests import their
# images the same way (K8S_CTR_ADDRESS is printed for them), or publish
# them to the local registry $MODELSHIP_CI_REGISTRY (127.0.0.1:5000, started
# with the Dagger engine), which containerd pulls from over plain http.
# K8S_NODE_SERVER is the API server at the node's address, for clients in
# containers (a Dagger function), to whom the kubeconfig's 127.0.0.1 is
# themselves; the server certificate names that address too.
#
# PKI is made with openssl. Everything lives under $K8S_CI_STATE (default
# /var/lib/modelship-ci/k8s) and /run/modelship-ci/k8s; `down` deletes the
# workloads through the API (so CNI tears its networks down), runs
# kube-proxy --cleanup, stops the daemons by saved PID, unmounts, deletes the
# bridge, leftover KUBE-*/CNI-* iptables chains and network namespaces that
# were not there before `up`, removes the kubepods cgroups leaf-first,
# restores the sysctls the kubelet and kube-proxy change, and removes both
# folders. Idempotent: `up` on a running cluster only prints the export line.
# Everything but the export line goes to stderr.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

STATE="${K8S_CI_STATE:-/var/lib/modelship-ci/k8s}"
RUN=/run/modelship-ci/k8s
PKI="$STATE/pki"
KCFG="$STATE/admin.kubeconfig"
BRIDGE=mscni0
POD_CIDR=10.244.0.0/24
GATEWAY=10.244.0.1
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1
# CoreDNS runs on the host at $GATEWAY:$DNS_PORT (the machine may already
# have a resolver on *:53); pods reach it as the kube-dns Service
# $DNS_IP:53, through kube-proxy, like on any cluster.
DNS_IP=10.96.0.10
DNS_PORT=1053
CTR_SOCK="$RUN/containerd/containerd.sock"
REGISTRY="${MODELSHIP_CI_REGISTRY:-127.0.0.1:5000}"
NODE="$(hostname | tr 'A-Z_' 'a-z-')"
SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops net.ipv4.conf.all.route_localnet net.ipv4.ip_forward)
log() { echo "k8s-cluster.sh: $*" >&2; }

usage() { echo "usage: $0 up|down" >&2; exit 2; }
[ $# -eq 1 ] || usage

node_ip() { ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -1; }

pidof_saved() { [ -f "$RUN/$1.pid" ] && cat "$RUN/$1.pid"; }
running() { local p; p=$(pidof_saved "$1") && [ -n "$p" ] && alive "$p"; }

# start NAME CMD... : runs CMD detached (own session), logs to $STATE/log/NAME.log.
start() {
	local name=$1; shift
	if running "$name"; then return 0; fi
	setsid "$@" >"$STATE/log/$name.log" 2>&1 </dev/null &
	echo $! >"$RUN/$name.pid"
}

# wait_for WHAT SECONDS CMD... : polls CMD every 0.2s.
wait_for() {
	local what=$1 secs=$2; shift 2
	local n=$((secs * 5))
	for _ in $(seq 1 "$n"); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	log "$what did not come up in ${secs}s; last log lines:"
	tail -n 30 "$STATE/log/${what}.log" >&2 2>/dev/null || true
	return 1
}

kubectl_() { "$BIN/kubectl" --kubeconfig "$KCFG" "$@"; }

apt_install() {
	local missing=()
	for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing ${missing[*]} from Debian"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
	# Debian's packages start their own daemons where systemd runs; there is
	# none here, but make sure no packaged etcd/containerd answers on our ports.
}

pki() {
	[ -f "$PKI/admin.crt" ] && return 0
	log "making the PKI with openssl"
	mkdir -p "$PKI"
	local ip; ip=$(node_ip)
	(
		cd "$PKI"
		openssl genrsa -out ca.key 2048 2>/dev/null
		openssl req -x509 -new -key ca.key -days 30 -subj "/CN=modelship-ci-ca" -out ca.crt 2>/dev/null
		openssl genrsa -out sa.key 2048 2>/dev/null
		openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
		# cert NAME SUBJECT [SANS]
		cert() {
			local name=$1 subj=$2 sans=${3:-}
			openssl genrsa -out "$name.key" 2048 2>/dev/null
			openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr" 2>/dev/null
			{
				echo "basicConstraints=CA:FALSE"
				echo "keyUsage=digitalSignature,keyEncipherment"
				if [ -n "$sans" ]; then
					echo "extendedKeyUsage=serverAuth,clientAuth"
					echo "subjectAltName=$sans"
				else
					echo "extendedKeyUsage=clientAuth"
				fi
			} >"$name.ext"
			openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile "$name.ext" -out "$name.crt" 2>/dev/null
			rm -f "$name.csr" "$name.ext"
		}
		cert apiserver "/CN=kube-apiserver" "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:$NODE,IP:127.0.0.1,IP:$SERVICE_IP,IP:$ip"
		cert admin "/O=system:masters/CN=modelship-ci-admin"
		cert controller-manager "/CN=system:kube-controller-manager"
		cert scheduler "/CN=system:kube-scheduler"
		cert kubelet "/O=system:nodes/CN=system:node:$NODE"
		cert kube-proxy "/CN=system:kube-proxy"
		cert coredns "/CN=modelship-ci-coredns"
		cert apiserver-kubelet "/O=system:masters/CN=kube-apiserver-kubelet-client"
	)
}

kubeconfig() { # NAME CERT
	local f="$STATE/$1.kubeconfig"
	cat >"$f" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: modelship-ci
  cluster:
    certificate-authority: $PKI/ca.crt
    server: https://127.0.0.1:6443
users:
- name: $1
  user:
    client-certificate: $PKI/$2.crt
    client-key: $PKI/$2.key
contexts:
- name: modelship-ci
  context: {cluster: modelship-ci, user: $1}
current-context: modelship-ci
EOF
}

up() {
	if [ -f "$KCFG" ] && running kube-apiserver && running kubelet && [ -n "${BIN:-}" ] &&
		kubectl_ get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -q True; then
		log "cluster already running"
		print_exports
		return 0
	fi
	local t0; t0=$(date +%s)
	apt_install etcd-server containerd runc containernetworking-plugins iptables conntrack openssl iproute2
	mkdir -p "$STATE/log" "$RUN" "$STATE/etcd" "$STATE/containerd" "$STATE/kubelet" "$RUN/containerd"
	# Remember what was there before, for down.
	if [ ! -f "$RUN/before.done" ]; then
		for s in "${SYSCTLS[@]}"; do echo "$s=$(sysctl -n "$s")"; done >"$RUN/sysctls"
		ls /run/netns 2>/dev/null >"$RUN/netns.before" || true
		for d in /var/lib/cni /var/lib/cni/networks /var/lib/cni/results; do [ -d "$d" ] && echo "$d"; done >"$RUN/cnidirs.before"
		touch "$RUN/before.done"
	fi
	pki
	kubeconfig admin admin
	kubeconfig controller-manager controller-manager
	kubeconfig scheduler scheduler
	kubeconfig kubelet kubelet
	kubeconfig kube-proxy kube-proxy
	kubeconfig coredns coredns
	local ip; ip=$(node_ip)

	log "starting etcd"
	start etcd /usr/bin/etcd --name "$NODE" --data-dir "$STATE/etcd" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster "$NODE=http://127.0.0.1:2380" --unsafe-no-fsync
	wait_for etcd 30 curl -fsS http://127.0.0.1:2379/health

	log "starting kube-apiserver"
	start kube-apiserver "$BIN/kube-apiserver" \
		--etcd-servers=http://127.0.0.1:2379 --bind-address=0.0.0.0 --secure-port=6443 \
		--advertise-address="$ip" --service-cluster-ip-range="$SERVICE_CIDR" \
		--tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
		--client-ca-file="$PKI/ca.crt" --authorization-mode=Node,RBAC \
		--kubelet-client-certificate="$PKI/apiserver-kubelet.crt" --kubelet-client-key="$PKI/apiserver-kubelet.key" \
		--service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--allow-privileged=true --enable-admission-plugins=NodeRestriction
	wait_for kube-apiserver 60 curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" https://127.0.0.1:6443/readyz

	log "starting kube-controller-manager and kube-scheduler"
	start kube-controller-manager "$BIN/kube-controller-manager" \
		--kubeconfig="$STATE/controller-manager.kubeconfig" --leader-elect=false \
		--use-service-account-credentials --service-account-private-key-file="$PKI/sa.key" \
		--root-ca-file="$PKI/ca.crt" --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
		--service-cluster-ip-range="$SERVICE_CIDR" --controllers='*,-nodeipam,-cloud-node-lifecycle'
	start kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$STATE/scheduler.kubeconfig" --leader-elect=false

	# Let the API server reach the kubelet (logs, port-forward, exec) and
	# CoreDNS read services.
	kubectl_ apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: modelship-ci-coredns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: User, name: modelship-ci-coredns}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: modelship-ci-kube-proxy}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:node-proxier}
subjects: [{kind: User, name: system:kube-proxy}]
EOF

	log "starting containerd"
	cat >"$STATE/containerd.toml" <<EOF
version = 2
root = "$STATE/containerd"
state = "$RUN/containerd/state"
[grpc]
  address = "$CTR_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "modelship-ci/pause:1"
  # root here lacks CAP_SYS_RESOURCE: without this every sandbox fails.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$STATE/certs.d"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
EOF
	# The local registry is plain http.
	mkdir -p "$STATE/certs.d/$REGISTRY"
	cat >"$STATE/certs.d/$REGISTRY/hosts.toml" <<EOF
server = "http://$REGISTRY"
[host."http://$REGISTRY"]
  capabilities = ["pull", "resolve"]
EOF
	mkdir -p "$STATE/cni"
	cat >"$STATE/cni/10-modelship-ci.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "modelship-ci",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$GATEWAY"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
EOF
	start containerd /usr/bin/containerd --config "$STATE/containerd.toml"
	wait_for containerd 30 ctr --address "$CTR_SOCK" version
	if ! ctr --address "$CTR_SOCK" -n k8s.io images ls -q | grep -q 'modelship-ci/pause:1'; then
		oci_image "$BIN/pause" /pause docker.io/modelship-ci/pause:1 "$STATE/pause.tar"
		ctr --address "$CTR_SOCK" -n k8s.io images import "$STATE/pause.tar" >&2
	fi

	# The bridge exists before the first pod so CoreDNS can bind its gateway.
	if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
		ip link add "$BRIDGE" type bridge
		ip addr add "$GATEWAY/24" dev "$BRIDGE"
		ip link set "$BRIDGE" up
	fi
	pod_forwarding add
	log "starting CoreDNS on $GATEWAY:$DNS_PORT (Service kube-dns $DNS_IP:53)"
	cat >"$STATE/Corefile" <<EOF
.:$DNS_PORT {
    bind $GATEWAY
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $STATE/coredns.kubeconfig modelship-ci
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
EOF
	start coredns "$BIN/coredns" -conf "$STATE/Corefile"
	kubectl_ apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_IP
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: $DNS_PORT}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: $DNS_PORT}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns, endpointslice.kubernetes.io/managed-by: modelship-ci}
addressType: IPv4
endpoints: [{addresses: ["$GATEWAY"], conditions: {ready: true}}]
ports:
- {name: dns, port: $DNS_PORT, protocol: UDP}
- {name: dns-tcp, port: $DNS_PORT, protocol: TCP}
EOF

	log "starting kubelet"
	cat >"$STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CTR_SOCK
failSwapOn: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
resolvConf: /etc/resolv.conf
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
podPidsLimit: -1
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
localStorageCapacityIsolation: false
EOF
	start kubelet "$BIN/kubelet" --config="$STATE/kubelet.yaml" --kubeconfig="$STATE/kubelet.kubeconfig" \
		--root-dir="$STATE/kubelet" --hostname-override="$NODE" --node-ip="$ip" --v=1
	log "starting kube-proxy"
	start kube-proxy "$BIN/kube-proxy" --kubeconfig="$STATE/kube-proxy.kubeconfig" --proxy-mode=iptables \
		--conntrack-max-per-core=0 --hostname-override="$NODE" --cluster-cidr="$POD_CIDR"

	wait_for kubelet 90 bash -c "'$BIN/kubectl' --kubeconfig '$KCFG' get node '$NODE' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True"
	# The default service account must exist before pods can be created.
	wait_for kube-controller-manager 60 "$BIN/kubectl" --kubeconfig "$KCFG" -n default get serviceaccount default
	log "cluster up in $(( $(date +%s) - t0 ))s (node $NODE, logs in $STATE/log)"
	print_exports
}

print_exports() {
	echo "export KUBECONFIG=$KCFG"
	echo "export K8S_CTR_ADDRESS=$CTR_SOCK"
	echo "export K8S_CI_BIN=$BIN"
	echo "export K8S_NODE_SERVER=https://$(node_ip):6443"
	# containerd's registry hosts directory (certs.d): a test that starts a
	# registry of its own says there how to reach it (plain http).
	echo "export K8S_REGISTRY_HOSTS=$STATE/certs.d"
}

# oci_image BINARY PATH_IN_IMAGE NAME OUT.tar: an OCI image layout of one
# static binary, with io.containerd.image.name set for ctr import.
oci_image() {
	local bin=$1 path=$2 name=$3 out=$4 d
	d=$(mktemp -d)
	mkdir -p "$d/rootfs$(dirname "$path")" "$d/oci/blobs/sha256"
	cp "$bin" "$d/rootfs$path"
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$d/rootfs" -cf "$d/layer.tar" .
	local ldig lsize cdig csize mdig msize
	ldig=$(sha256sum "$d/layer.tar" | cut -d' ' -f1); lsize=$(stat -c %s "$d/layer.tar")
	mv "$d/layer.tar" "$d/oci/blobs/sha256/$ldig"
	printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["%s"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$path" "$ldig" >"$d/config.json"
	cdig=$(sha256sum "$d/config.json" | cut -d' ' -f1); csize=$(stat -c %s "$d/config.json")
	mv "$d/config.json" "$d/oci/blobs/sha256/$cdig"
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
		"$cdig" "$csize" "$ldig" "$lsize" >"$d/manifest.json"
	mdig=$(sha256sum "$d/manifest.json" | cut -d' ' -f1); msize=$(stat -c %s "$d/manifest.json")
	mv "$d/manifest.json" "$d/oci/blobs/sha256/$mdig"
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"1"}}]}' \
		"$mdig" "$msize" "$name" >"$d/oci/index.json"
	echo '{"imageLayoutVersion":"1.0.0"}' >"$d/oci/oci-layout"
	tar -C "$d/oci" -cf "$out" .
	rm -rf "$d"
}

# alive PID: the process exists and is not a zombie (daemons started by an
# earlier `up` are reparented to PID 1, which may reap them late).
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# stop_daemons NAME... : SIGTERM to all, wait up to 10s for all, then SIGKILL.
stop_daemons() {
	local name p pids=()
	for name in "$@"; do
		p=$(pidof_saved "$name") || continue
		[ -n "$p" ] && alive "$p" && kill "$p" 2>/dev/null && pids+=("$p")
		rm -f "$RUN/$name.pid"
	done
	for _ in $(seq 1 50); do
		local any=
		for p in "${pids[@]}"; do alive "$p" && any=1; done
		[ -z "$any" ] && return 0
		sleep 0.2
	done
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}

# pod_forwarding add|del: lets traffic between pods (and from pods out)
# through the FORWARD chain, whose policy dockerd sets to DROP: with
# br_netfilter, even two pods on the bridge are forwarded through it. A
# real cluster's CNI accepts pod traffic; without this, a pod reaches no
# other pod and no ClusterIP (a connection to one times out). Appended,
# after kube-proxy's jumps: a Service with no ready endpoint is still
# rejected (connection refused), as on a real node.
#
# A ClusterIP that kube-proxy has not (or not yet) translated is refused
# first: on a real node such a packet goes nowhere, while this machine's
# egress would answer it (an HTTP 404 from whatever intercepts it).
pod_forwarding() {
	local rule
	local rules=(
		"-i $BRIDGE -d $SERVICE_CIDR -m comment --comment modelship-ci-pods -j REJECT"
		"-i $BRIDGE -m comment --comment modelship-ci-pods -j ACCEPT"
		"-o $BRIDGE -m comment --comment modelship-ci-pods -j ACCEPT"
	)
	for rule in "${rules[@]}"; do
		# shellcheck disable=SC2086
		if [ "$1" = add ]; then
			iptables -C FORWARD $rule 2>/dev/null || iptables -A FORWARD $rule
		else
			while iptables -D FORWARD $rule 2>/dev/null; do :; done
		fi
	done
}

# Deletes the cluster's iptables chains, in every table, for iptables and
# ip6tables: every KUBE-* chain, the portmap plugin's CNI-HOSTPORT-* chains,
# and the per-pod CNI-<hash> chains whose rules carry our network's comment
# (name: "modelship-ci"). Other CNI users on the machine (the Dagger engine's
# "dagger" network, its CNI-FORWARD/CNI-ADMIN firewall chains) are left alone.
clean_chains() {
	local ipt table chain rule ours
	for ipt in iptables ip6tables; do
		command -v "$ipt" >/dev/null || continue
		for table in filter nat mangle raw; do
			"$ipt" -t "$table" -S >/dev/null 2>&1 || continue
			ours=$("$ipt" -t "$table" -S | grep -F 'name: \"modelship-ci\"' | grep -oE -- '-j CNI-[0-9a-f]+' | sed 's/^-j //' | sort -u || true)
			is_ours() {
				case "$1" in
				KUBE-* | CNI-HOSTPORT-*) return 0 ;;
				esac
				grep -qx -- "$1" <<<"$ours"
			}
			# Rules in any chain that jump to one of ours.
			{ "$ipt" -t "$table" -S | grep -E '^-A ' | grep -E -- '-j (KUBE-|CNI-)' || true; } | while read -r rule; do
				chain=$(grep -oE -- '-j (KUBE|CNI)-[^ ]+' <<<"$rule" | sed 's/^-j //')
				is_ours "$chain" || continue
				# shellcheck disable=SC2086
				eval "$ipt -t $table ${rule/-A /-D }" 2>/dev/null || true
			done
			for chain in $("$ipt" -t "$table" -S | sed -n 's/^-N \(\(KUBE\|CNI\)-[^ ]*\)$/\1/p'); do
				is_ours "$chain" && "$ipt" -t "$table" -F "$chain" 2>/dev/null || true
			done
			for chain in $("$ipt" -t "$table" -S | sed -n 's/^-N \(\(KUBE\|CNI\)-[^ ]*\)$/\1/p'); do
				is_ours "$chain" && "$ipt" -t "$table" -X "$chain" 2>/dev/null || true
			done
		done
	done
}

down() {
	local t0; t0=$(date +%s)
	if [ ! -d "$RUN" ] && [ ! -d "$STATE" ]; then
		log "no cluster to tear down"
		return 0
	fi
	if running kube-apiserver && [ -f "$KCFG" ] && [ -x "$BIN/kubectl" ]; then
		log "deleting workloads through the API"
		local nss
		nss=$(kubectl_ get ns -o jsonpath='{.items[*].metadata.name}' 2>/dev/null || true)
		for ns in $nss; do
			case $ns in kube-system | kube-public | kube-node-lease) ;; default) ;; *) kubectl_ delete ns "$ns" --wait=false >/dev/null 2>&1 || true ;; esac
		done
		kubectl_ delete deployments,replicasets,statefulsets,daemonsets,jobs --all -A --wait=false >/dev/null 2>&1 || true
		kubectl_ delete pods --all -A --grace-period=1 --wait=false >/dev/null 2>&1 || true
		local left
		for _ in $(seq 1 150); do
			left=$(kubectl_ get pods -A -o name 2>/dev/null || true)
			[ -z "$left" ] && break
			sleep 0.2
		done
		[ -z "$left" ] || log "pods still there after 30s (their containers are killed below): $(echo $left)"
	fi
	if [ -x "${BIN:-}/kube-proxy" ]; then
		stop_daemons kube-proxy
		"$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
	fi
	stop_daemons kube-proxy kubelet
	# Containers the kubelet did not get to delete.
	if running containerd; then
		local ids
		ids=$(ctr --address "$CTR_SOCK" -n k8s.io tasks ls -q 2>/dev/null || true)
		for id in $ids; do ctr --address "$CTR_SOCK" -n k8s.io tasks kill -s KILL "$id" >/dev/null 2>&1 || true; done
		sleep 0.5
		for id in $ids; do ctr --address "$CTR_SOCK" -n k8s.io tasks rm -f "$id" >/dev/null 2>&1 || true; done
		ids=$(ctr --address "$CTR_SOCK" -n k8s.io containers ls -q 2>/dev/null || true)
		for id in $ids; do ctr --address "$CTR_SOCK" -n k8s.io containers rm "$id" >/dev/null 2>&1 || true; done
	fi
	stop_daemons coredns kube-scheduler kube-controller-manager
	stop_daemons kube-apiserver containerd
	stop_daemons etcd
	# Any runc shim left behind.
	for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $CTR_SOCK" 2>/dev/null || true); do kill -9 "$p" 2>/dev/null || true; done

	# Mounts under our folders (deepest first).
	local m
	for m in $(awk '{print $5}' /proc/self/mountinfo | grep -E "^($STATE|$RUN)" | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
	# Network namespaces CNI made, that were not there before up.
	if [ -d /run/netns ]; then
		for n in $(ls /run/netns); do
			case $n in cni-*) grep -qx "$n" "$RUN/netns.before" 2>/dev/null || { ip netns delete "$n" 2>/dev/null || true; } ;; esac
		done
	fi
	ip link del "$BRIDGE" 2>/dev/null || true
	pod_forwarding del
	clean_chains
	rm -rf /var/lib/cni/networks/modelship-ci /var/lib/cni/results/modelship-ci-* 2>/dev/null || true
	# host-local's folders, when up created them and they are empty now.
	for d in /var/lib/cni/networks /var/lib/cni/results /var/lib/cni; do
		grep -qx "$d" "$RUN/cnidirs.before" 2>/dev/null || rmdir "$d" 2>/dev/null || true
	done
	# kubepods cgroups, leaf first.
	local c
	for c in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	done
	if [ -f "$RUN/sysctls" ]; then
		while IFS== read -r k v; do [ -n "$k" ] && sysctl -q -w "$k=$v" >/dev/null 2>&1 || true; done <"$RUN/sysctls"
	fi
	rm -rf "$RUN" "$STATE"
	log "cluster torn down in $(( $(date +%s) - t0 ))s"
}

case $1 in
up)
	BIN=$("$here/k8s-build.sh")
	up
	;;
down)
	BIN="${K8S_CI_BIN:-${K8S_CI_CACHE:-${DAGGER_CI_CACHE:-/var/cache/modelship-ci}}/k8s-v1.34.1/bin}"
	down
	;;
*) usage ;;
esac
