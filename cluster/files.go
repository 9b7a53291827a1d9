package cluster

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/zennet/zennet/proto"
)

// Where a session's files are inside each of its hosts. The provider keeps
// them current (read-only to the host): SessionDir is the lease's session
// directory, the others are single files bound in.
const (
	SessionDir    = "/root/.zennet"
	HostSSHConfig = "/etc/ssh/ssh_config.d/zennet.conf"
	HostMPIParams = "/root/.openmpi/mca-params.conf"
	// ClusterInterface is the hosts' interface on the session's network.
	ClusterInterface = "eth1"
	// Files in SessionDir.
	KeyFile        = "id_zennet"
	KnownHostsFile = "known_hosts"
	HostfileFile   = "hostfile"
	LoginFile      = "sshloginfile"
	HostsFile      = "hosts"
)

// Files are the contents of a session's files in its hosts, from its
// membership: what changes as hosts come and go.
type Files struct {
	// EtcHosts are the session's lines of /etc/hosts.
	EtcHosts []byte
	// InDir are SessionDir's files by name (the key is not among them: it
	// never changes).
	InDir map[string][]byte
}

// SessionFiles are a membership's files: the members' names and addresses,
// their host keys under both, the Open MPI hostfile and the GNU parallel
// sshloginfile for jobs started from any of them.
func SessionFiles(m Membership) Files {
	var kh, mpi, login, names strings.Builder
	for _, mb := range m.Members {
		fmt.Fprintf(&kh, "%s,%s %s\n", mb.Name, mb.Addr, strings.TrimSpace(mb.HostKey))
		fmt.Fprintf(&mpi, "%s slots=%d\n", mb.Name, mb.Slots)
		fmt.Fprintf(&login, "%d/ssh %s\n", mb.Slots, mb.Name)
		fmt.Fprintf(&names, "%s %s\n", mb.Name, mb.Addr)
	}
	return Files{
		EtcHosts: HostsLines(m),
		InDir: map[string][]byte{
			KnownHostsFile: []byte(kh.String()),
			HostfileFile:   []byte(mpi.String()),
			LoginFile:      []byte(login.String()),
			HostsFile:      []byte(names.String()),
		},
	}
}

// StaticFiles are the files of a session that never change, written when a
// host is made: ssh's configuration for the session's hosts (the session's
// key, the known hosts the provider keeps), and Open MPI's parameters (the
// session's network only, since eth0 has the same address in every host
// and leads nowhere; no single-copy shared memory, which gVisor lacks).
func StaticFiles(session string, subnet netip.Prefix) (sshConfig, mpiParams []byte) {
	glob := subnetGlob(subnet)
	sshConfig = []byte(fmt.Sprintf("# zennet session %s: ssh between the session's hosts.\nHost zennet-* %s\n  User root\n  IdentityFile %s/%s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s/%s\n  StrictHostKeyChecking yes\n  UpdateHostKeys no\n  BatchMode yes\n  Ciphers %s\n",
		session, glob, SessionDir, KeyFile, SessionDir, KnownHostsFile, proto.SSHCiphers))
	// By interface name: Open MPI's subnet match finds no interface in
	// gVisor (its address discovery there comes up empty).
	mpiParams = []byte(fmt.Sprintf("# zennet session %s (%s)\nbtl_tcp_if_include = %s\noob_tcp_if_include = %s\nbtl_vader_single_copy_mechanism = none\n",
		session, subnet, ClusterInterface, ClusterInterface))
	return sshConfig, mpiParams
}

// subnetGlob is an ssh_config pattern covering the subnet's addresses
// (coarser than it when its length is not a multiple of 8).
func subnetGlob(p netip.Prefix) string {
	b := p.Addr().As4()
	switch {
	case p.Bits() >= 24:
		return fmt.Sprintf("%d.%d.%d.*", b[0], b[1], b[2])
	case p.Bits() >= 16:
		return fmt.Sprintf("%d.%d.*", b[0], b[1])
	}
	return fmt.Sprintf("%d.*", b[0])
}
